"""Google Cloud credentials for Vertex AI: an OAuth 2 access token, kept fresh.

The credentials are google-auth's, the library made for this: Application Default
Credentials (``google.auth.default``: the service-account key file named by
``$GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``'s user
credentials, the metadata server of Compute Engine, Cloud Run, GKE ...), or a
``google.auth.credentials.Credentials`` object of the caller's. streamwrap only decides
*when* to refresh and where that runs:

- Before a request whose token is missing or expired. google-auth's ``Credentials.valid``
  already counts a token as expired 3 min 45 s before its real expiry
  (``google.auth._helpers.REFRESH_THRESHOLD``), so a request never goes out with a token in
  its last minutes.
- Off the event loop: loading ADC reads files and may probe the metadata server, and
  ``Credentials.refresh`` is a blocking HTTP call (google-auth's ``requests`` transport), so
  both run in a worker thread (``anyio.to_thread``) while other streams keep flowing.
- Once for all concurrent calls: a lock around the refresh, and a second look at the token
  once inside it, so that a hundred calls arriving with an expired token make one refresh
  and all use its token.

Failures are typed: no credentials at all is a :class:`ConfigError` saying where they can
come from; a token endpoint that refuses the credentials (``RefreshError``: a revoked key,
a deleted service account) is an :class:`AuthenticationError` (status 401: the credentials
were refused, as a 401 says); a token endpoint that cannot be reached
(``TransportError``) is a :class:`ProviderConnectionError`, retried like any connection
failure. None of them carries google-auth's exception (whose frames hold the signer and
the token endpoint's answer) as cause or context, and the token itself is never bound to a
local variable of ours: it goes from the credentials into the request header in one
expression (see ``_secret``).
"""

from __future__ import annotations

from typing import Any

from ..._errors import AuthenticationError, ConfigError, MissingDependencyError, ProviderConnectionError
from ..._runtime import runtime
from ..._secret import Secret

__all__ = ["SCOPES", "GoogleCredentials"]

#: The OAuth scope Vertex AI needs (what google-genai asks for).
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)

_NO_CREDENTIALS = (
    "no Google Cloud credentials for {provider}: set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service-account key file, run `gcloud auth application-default login`, run on Google Cloud "
    "(the metadata server), pass 'credentials' (a google.auth Credentials object), or use a Vertex AI "
    "express-mode 'api_key'"
)
_MESSAGE_LIMIT = 300  # of google-auth's words about a refused refresh


class GoogleCredentials:
    """The access token source of one wrapper: ``await token()`` gives a valid token."""

    __slots__ = ("_credentials", "_extra", "_lock", "_lock_generation", "project", "provider")

    def __init__(self, credentials: Any | None, *, provider: str, extra: str) -> None:
        if credentials is not None:
            # A service-account key loaded without scopes would be refused a token: give it
            # Vertex AI's (the caller's object is left as it is; scoped ones are kept).
            from google.auth.credentials import with_scopes_if_required

            credentials = with_scopes_if_required(credentials, SCOPES)  # type: ignore[no-untyped-call]
        #: ``None`` until ADC are loaded (on the first call, off the loop)
        self._credentials = credentials
        self.provider = provider
        self._extra = extra
        #: the project ADC name (a service-account key's, gcloud's), once loaded
        self.project: str | None = None
        self._lock: Any = None
        self._lock_generation = -1

    def __repr__(self) -> str:
        kind = "application default" if self._credentials is None else type(self._credentials).__name__
        return f"<GoogleCredentials {kind}>"

    @property
    def credentials(self) -> Any | None:
        """The google-auth credentials (``None`` before ADC are loaded)."""
        return self._credentials

    @property
    def quota_project(self) -> str | None:
        """The credentials' quota project, sent as ``x-goog-user-project`` (as google-genai does)."""
        project = getattr(self._credentials, "quota_project_id", None)
        return project if isinstance(project, str) and project else None

    def _fresh(self) -> bool:
        credentials = self._credentials
        return credentials is not None and bool(credentials.valid)

    async def token(self) -> Secret:
        """A valid access token, refreshed first (once, for every waiting call) if needed."""
        if not self._fresh():
            import anyio

            # A lock belongs to the runtime's loop: after a fork there is a new one.
            if self._lock is None or self._lock_generation != runtime.generation:
                self._lock, self._lock_generation = anyio.Lock(), runtime.generation
            async with self._lock:
                if not self._fresh():  # (another call may have refreshed while this one waited)
                    # Abandoned if the call is cancelled (a timeout, the caller): a token
                    # endpoint that hangs (google-auth waits up to 120 s) must not hold the
                    # cancellation; the thread ends on its own, its token kept if it got one.
                    error = await anyio.to_thread.run_sync(self._refresh, abandon_on_cancel=True)
                    if error is not None:
                        raise error
        return Secret(str(self._credentials.token))  # type: ignore[union-attr]

    def _refresh(
        self,
    ) -> ConfigError | AuthenticationError | ProviderConnectionError | MissingDependencyError | None:
        """Load ADC if needed and refresh the token, in a worker thread; the error to raise,
        built outside the ``except`` blocks so that it carries no google-auth context."""
        try:
            import google.auth
            from google.auth import exceptions
            from google.auth.transport.requests import Request
        except ImportError:
            return MissingDependencyError("google-auth", self._extra)
        failure: tuple[str, str] | None = None
        try:
            if self._credentials is None:
                self._credentials, self.project = google.auth.default(scopes=list(SCOPES))
            self._credentials.refresh(Request())
        except exceptions.DefaultCredentialsError as exc:
            failure = ("config", _first_words(exc))
        except exceptions.RefreshError as exc:
            failure = ("refused", _first_words(exc))
        except exceptions.TransportError as exc:
            failure = ("unreachable", _first_words(exc))
        except Exception as exc:
            # Anything else (a key that does not parse, a signer's error) is the credentials'
            # failure too, and its traceback's frames hold the key: not passed on.
            failure = ("refused", f"{type(exc).__name__}: {_first_words(exc)}")
        if failure is None:
            return None
        kind, detail = failure
        if kind == "config":
            return ConfigError(
                _NO_CREDENTIALS.format(provider=self.provider) + f" ({detail}).", key="credentials"
            )
        if kind == "refused":
            return AuthenticationError(
                f"cannot get a Google Cloud access token: the token endpoint refused the credentials: {detail}",
                provider=self.provider,
                status_code=401,
            )
        return ProviderConnectionError(
            f"cannot get a Google Cloud access token: the token endpoint could not be reached: {detail}",
            provider=self.provider,
        )


def _first_words(exc: BaseException) -> str:
    """google-auth's message (its first argument: the rest is the token endpoint's whole
    answer), cut short."""
    message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else type(exc).__name__
    return message if len(message) <= _MESSAGE_LIMIT else message[:_MESSAGE_LIMIT] + "..."
