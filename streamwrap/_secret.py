"""API keys kept out of reprs, logs and error messages."""

from __future__ import annotations

from typing import Any

__all__ = ["Secret", "scrub"]


class Secret:
    """A string that never shows itself: ``repr`` and ``str`` print ``'**********'``.

    Call :meth:`reveal` at the one place the value is handed to an SDK.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        # Pickling would write the key to disk or a socket in clear: refuse.
        raise TypeError("streamwrap.Secret cannot be pickled")


def scrub(value: Any, secret: Secret | None) -> Any:
    """Replace any occurrence of the secret inside ``value`` (str, or nested dict/list)."""
    if secret is None or len(secret.reveal()) < 4:
        return value
    raw = secret.reveal()
    if isinstance(value, str):
        return value.replace(raw, "**********") if raw in value else value
    if isinstance(value, dict):
        return {k: scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    return value
