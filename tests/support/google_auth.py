"""Real Google Cloud credentials for the tests, with nothing of Google's reached: a
service-account key file generated here (a fresh RSA key) whose ``token_uri`` points at
:class:`TokenServer`, an OAuth 2 token endpoint on 127.0.0.1.

google-auth reads the file as it reads a downloaded key (``GOOGLE_APPLICATION_CREDENTIALS``,
``service_account.Credentials.from_service_account_file``), signs a JWT assertion with the
key and POSTs the JWT-bearer grant to the endpoint, through its ``requests`` transport: the
real refresh path. The server checks the assertion's signature with the key's public half
and answers ``{"access_token", "expires_in", "token_type"}``, or the error it is told to.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

PROJECT = "sw-test-project"
CLIENT_EMAIL = f"streamwrap-test@{PROJECT}.iam.gserviceaccount.com"


@dataclass
class Grant:
    """One token request the server answered."""

    claims: dict[str, Any]
    assertion: str
    token: str | None


@dataclass
class TokenServer:
    """An OAuth 2 token endpoint on 127.0.0.1 (``url`` is the ``token_uri``).

    Each grant gets a new token, ``ya29.streamwrap-test-<n>-<random>`` (or ``token``, when
    set), valid for ``expires_in`` seconds. ``refuse`` (status, JSON body) makes it refuse
    every grant, its ``error_description`` followed by the assertion it was sent when
    ``echo`` is set (a server that quotes what it got). ``hold``, when set, is waited for
    before each answer, and ``received`` is set as each grant request arrives: a test can
    keep a refresh in flight as long as it needs.
    """

    public_pem: bytes
    expires_in: int = 3600
    token: str | None = None
    refuse: tuple[int, dict[str, Any]] | None = None
    echo: bool = False
    hold: threading.Event | None = None
    received: threading.Event = field(default_factory=threading.Event)
    grants: list[Grant] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> TokenServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                status, answer = server.answer(form)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    @property
    def tokens(self) -> list[str]:
        """The tokens issued, in order."""
        return [g.token for g in self.grants if g.token]

    def answer(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The endpoint's answer to one token request (its form fields)."""
        self.received.set()
        if self.hold is not None:
            self.hold.wait(30)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type"}
        assertion = form["assertion"][0]
        try:
            claims = self.verify(assertion)
        except Exception as exc:  # a bad signature: Google's answer
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({exc})"}
        with self._lock:
            if self.refuse is not None:
                self.grants.append(Grant(claims, assertion, None))
                status, body = self.refuse
                if self.echo:
                    body = {**body, "error_description": f"{body.get('error_description')} {assertion}"}
                return status, body
            token = self.token or f"ya29.streamwrap-test-{len(self.grants) + 1}-{secrets.token_hex(8)}"
            self.grants.append(Grant(claims, assertion, token))
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    def verify(self, assertion: str) -> dict[str, Any]:
        """The assertion's claims, its RS256 signature checked with the key's public half."""
        from google.auth import jwt

        claims: dict[str, Any] = jwt.decode(assertion, certs=self.public_pem.decode(), verify=True)
        return claims


def new_key() -> tuple[str, bytes]:
    """A fresh RSA key: (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def key_file(path: Path, private_pem: str, token_uri: str, *, project: str | None = PROJECT) -> Path:
    """A service-account key file as Google's console downloads it, with ``token_uri``."""
    info: dict[str, Any] = {
        "type": "service_account",
        "private_key_id": secrets.token_hex(20),
        "private_key": private_pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "universe_domain": "googleapis.com",
    }
    if project is not None:
        info["project_id"] = project
    path.write_text(json.dumps(info))
    return path
