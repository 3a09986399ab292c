"""Bedrock's two ways to authenticate: SigV4 signatures with AWS credentials, or an API key.

**SigV4** (the default): credentials come from botocore's standard chain, the one boto3 and
the AWS CLI use (environment variables, the shared config and credentials files and their
profiles, SSO, web identity, container and instance roles), optionally for a named
``profile``; each request is signed by ``botocore.auth.SigV4Auth`` over a
``botocore.awsrequest.AWSRequest``. streamwrap writes no signer of its own: botocore is
the library made for it. Finding the credentials may read files or call a metadata or SSO
endpoint, so it runs off the event loop (``anyio.to_thread``), once; temporary
credentials (roles, SSO) are refreshed, off the loop too, when botocore says they are
about to expire, and signing itself is pure computation, on the loop.

**Bedrock API keys** (``api_key``, else ``$AWS_BEARER_TOKEN_BEDROCK``): sent as
``Authorization: Bearer <key>`` by the HTTP client; nothing is signed and botocore is not
needed.

Secrets: the secret access key and the session token live only in botocore's credential
objects (whose repr shows no value) and in the signed headers of one request, which are
copied straight onto the ``httpx.Request``; no frame of streamwrap's that an error can pass
through holds them in a local (``botocore``'s frozen credentials are a named tuple that
would show them), and a failure while finding or signing is reported by its kind and
message only, without botocore's exception or frames behind it.
"""

from __future__ import annotations

from typing import Any

from ..._errors import ConfigError, MissingDependencyError, ProviderConnectionError
from ..._secret import Secret

__all__ = ["SigV4Signer", "default_region"]

#: The service name Bedrock's runtime endpoints are signed for.
SERVICE = "bedrock"


def default_region(profile: str | None) -> str | None:
    """The region botocore's configuration gives (``AWS_DEFAULT_REGION``, the profile's
    ``region``), for a model whose config and environment name none. Reads files: call
    it off the event loop. ``None`` without botocore (a model that uses an API key needs
    no botocore: then the region must be given)."""
    try:
        import botocore.session
    except ImportError:
        return None

    session = botocore.session.Session(profile=profile)
    region = session.get_config_variable("region")
    return region if isinstance(region, str) and region else None


class SigV4Signer:
    """Signs requests with the credentials of botocore's chain, found on first use."""

    __slots__ = ("_credentials", "profile", "provider", "region", "secrets")

    def __init__(self, provider: str, region: str, profile: str | None) -> None:
        self.provider = provider
        self.region = region
        self.profile = profile
        self._credentials: Any = None  # botocore Credentials (its repr shows no secret)
        #: The secret access key and session token of the last signature, to scrub from
        #: what the server sends back (an error may quote them).
        self.secrets: tuple[Secret, ...] = ()

    def __repr__(self) -> str:
        return f"<SigV4Signer region={self.region!r} profile={self.profile!r}>"

    async def sign(self, request: Any, body: bytes) -> None:
        """Add the SigV4 headers (``authorization``, ``x-amz-date``, and with temporary
        credentials ``x-amz-security-token``) to the ``httpx.Request`` ``request``."""
        import anyio.to_thread

        failure: str | None = None
        if self._credentials is None:
            failure = await anyio.to_thread.run_sync(self._find)
        elif _refresh_needed(self._credentials):
            failure = await anyio.to_thread.run_sync(_refresh, self._credentials)
        if failure is None:
            failure, self.secrets = _sign(self._credentials, self.region, request, body)
        if failure is not None:
            raise ProviderConnectionError(failure, provider=self.provider)

    def _find(self) -> str | None:
        """Find the credentials (in a worker thread); a failure's description, or None."""
        try:
            import botocore.session
        except ImportError:
            raise MissingDependencyError("botocore", "bedrock") from None
        try:
            credentials = botocore.session.Session(profile=self.profile).get_credentials()
        except Exception as exc:  # (botocore's many kinds: a bad profile, an SSO failure, ...)
            return f"cannot load AWS credentials: {type(exc).__name__}: {exc}"
        if credentials is None:
            raise ConfigError(
                "no AWS credentials for bedrock_chat: botocore's chain found none (environment "
                "variables, ~/.aws/credentials and config"
                + (f" for profile {self.profile!r}" if self.profile else "")
                + ", SSO, container or instance roles); or set 'api_key' (a Bedrock API key) "
                "or the AWS_BEARER_TOKEN_BEDROCK environment variable.",
                key="profile" if self.profile else "api_key",
            )
        self._credentials = credentials
        return None


def _refresh_needed(credentials: Any) -> bool:
    # Only temporary credentials (roles, SSO) refresh; static ones have no such method.
    refresh_needed = getattr(credentials, "refresh_needed", None)
    return bool(refresh_needed is not None and refresh_needed())


def _refresh(credentials: Any) -> str | None:
    """Refresh (in a worker thread): ``get_frozen_credentials`` refreshes when needed."""
    try:
        credentials.get_frozen_credentials()
    except Exception as exc:
        return f"cannot refresh the AWS credentials: {type(exc).__name__}: {exc}"
    return None


def _sign(credentials: Any, region: str, request: Any, body: bytes) -> tuple[str | None, tuple[Secret, ...]]:
    """Sign ``request`` (the headers go straight onto it); ``(a failure's description or
    None, the credentials' secrets)``. No caller's frame sees the frozen credentials
    (a named tuple whose repr shows them): they live and die in this one."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    try:
        aws = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=body,
            headers={k: v for k, v in request.headers.items() if k in ("content-type", "accept")},
        )
        frozen = credentials.get_frozen_credentials()
        SigV4Auth(frozen, SERVICE, region).add_auth(aws)
    except Exception as exc:
        return f"cannot sign the request: {type(exc).__name__}: {exc}", ()
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
        if name in aws.headers:
            request.headers[name] = aws.headers[name]
    return None, tuple(Secret(value) for value in (frozen.secret_key, frozen.token) if value)
