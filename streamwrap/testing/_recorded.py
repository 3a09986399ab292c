"""What the emulator remembers about each request it received."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the emulator received it.

    Attributes:
        method: e.g. ``"POST"``.
        path: The request target as sent, including any query string.
        headers: Header names lower-cased; repeated headers joined with ``", "``.
        body: The raw request body.
        json: The body parsed as JSON, or ``None`` if it is empty or not JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any

    @property
    def bearer_token(self) -> str | None:
        """The credential of an ``Authorization: Bearer ...`` header (how OpenAI and
        DashScope clients send their key), or ``None`` if there is none."""
        scheme, _, token = self.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None

    @classmethod
    def from_wire(
        cls, method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes
    ) -> RecordedRequest:
        """Build a record from the raw parts of a parsed HTTP request."""
        merged: dict[str, str] = {}
        for raw_name, raw_value in headers:
            # latin-1 maps every byte, so odd header bytes never fail the request.
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        return cls(
            method=method.decode("latin-1"),
            path=target.decode("latin-1"),
            headers=merged,
            body=body,
            json=parsed,
        )
