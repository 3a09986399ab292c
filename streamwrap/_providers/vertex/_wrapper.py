"""``vertex_gemini_chat``: Gemini on Google Cloud's Vertex AI, natively.

The body is the Gemini API's (``generateContent``: ``contents``, ``systemInstruction``,
``tools``, ``generationConfig`` ...) and so is the stream (CRLF SSE of
``GenerateContentResponse`` objects), so this wrapper reuses ``gemini_chat``'s request
builder and wire mapper as they are; what differs is where the request goes and how it is
authenticated. As for ``gemini_chat``, httpx sends the request and streamwrap decodes the
bytes: google-genai (``Client(vertexai=True)``) is the reference followed here (its URLs,
headers, environment variables and precedence rules; the tests and benchmarks read the same
streams with it), not a dependency.

The request::

    POST https://{location}-aiplatform.googleapis.com/{api_version}/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent?alt=sse
    Authorization: Bearer ACCESS_TOKEN        (x-goog-user-project: QUOTA_PROJECT, if the credentials name one)

The location ``global`` is served by ``aiplatform.googleapis.com``, and the multi-region
locations ``us`` and ``eu`` by ``aiplatform.{location}.rep.googleapis.com`` (as
google-genai). ``base_url`` (else ``$GOOGLE_VERTEX_BASE_URL``) replaces
``https://{host}``: a proxy, a private endpoint, the emulator. ``api_version`` defaults to
``"v1"`` (google-genai sends ``v1beta1``; both serve the same body). ``model_name`` is a
Gemini model (``gemini-2.5-flash``), ``publisher/model``, ``publishers/.../models/...``,
``models/...`` (a model of the project's registry), or a whole resource name
``projects/.../locations/.../endpoints/...`` sent as is.

Authentication, with google-genai's precedence:

1. ``credentials`` (config key or argument): a ``google.auth.credentials.Credentials``
   object, used as is (scoped to ``cloud-platform`` if it needs scopes).
2. ``api_key`` (config key): Vertex AI express mode, sent as ``x-goog-api-key``. Without a
   ``project`` in the config the request goes to the express endpoint,
   ``https://aiplatform.googleapis.com/{api_version}/publishers/google/models/{model}:...``;
   with one, to the project's path.
3. Otherwise Application Default Credentials (``_auth``) when a project or location is
   known from the config or ``$GOOGLE_CLOUD_PROJECT`` / ``$GOOGLE_CLOUD_LOCATION``; else an
   express-mode key from ``$GOOGLE_API_KEY`` (or ``$GEMINI_API_KEY``); else ADC, whose
   project (a service-account key's, gcloud's) is then used.

The project comes from ``project``, else ``$GOOGLE_CLOUD_PROJECT``, else the credentials;
the location from ``location``, else ``$GOOGLE_CLOUD_LOCATION``, else ``global`` (the
default of google-genai). A project that none of them gives is a :class:`ConfigError`
naming ``project`` and the variable, at the first call (ADC are loaded then, off the event
loop, not when the model is built).

Errors are Google's: HTTP 401 (a refused token) and 403 (``PERMISSION_DENIED``: the
credentials' principal lacks ``aiplatform.endpoints.predict``) raise
:class:`AuthenticationError`, and so does express mode's HTTP 400 ``API_KEY_INVALID``, as
for ``gemini_chat``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ..._errors import ConfigError, ProviderHTTPError
from ..._secret import Secret
from ..._transport._httpx_client import post_json
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ..gemini._wire import GeminiStreamMapper, response_deltas
from ..gemini._wrapper import api_key_client, build_request_body, refine_http_error
from ._auth import GoogleCredentials

__all__ = ["VertexGeminiChatWrapper"]

DEFAULT_API_VERSION = "v1"
DEFAULT_LOCATION = "global"
#: The environment variables read, google-genai's (``GOOGLE_API_KEY`` wins over ``GEMINI_API_KEY``).
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
LOCATION_ENV = "GOOGLE_CLOUD_LOCATION"
API_KEY_ENV = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
_GLOBAL_HOST = "aiplatform.googleapis.com"
_MULTI_REGIONS = frozenset(("us", "eu"))
_API_VERSION = re.compile(r"^[A-Za-z0-9._-]*$")
_LOCATION = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# A project id (or a domain-scoped one, "example.com:my-project"): nothing that changes a URL.
_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:_-]*$")


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


class VertexGeminiChatWrapper(ModelWrapper):
    """Gemini on Vertex AI over the native ``streamGenerateContent`` protocol."""

    model_type: ClassVar[str] = "vertex_gemini_chat"
    provider: ClassVar[str] = "vertex"
    extra: ClassVar[str] = "vertex"
    # (genai-prices lists Vertex AI's Gemini prices under Google's, which match the API's.)
    price_provider_id: ClassVar[str | None] = "google"
    gen_ai_provider_name: ClassVar[str] = "gcp.vertex_ai"
    # Application Default Credentials stand in for a key; the express-mode key variables are
    # read below, after the project ones (google-genai's precedence).
    api_key_optional: ClassVar[bool] = True
    base_url_env: ClassVar[tuple[str, ...]] = ("GOOGLE_VERTEX_BASE_URL",)
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "project": ((str,), "a Google Cloud project id such as 'my-project'"),
        "location": ((str,), "a Vertex AI location such as 'us-central1', 'europe-west4' or 'global'"),
        "credentials": ((object,), "a google.auth.credentials.Credentials object"),
        "api_version": ((str,), "an API version such as 'v1' or 'v1beta1' ('' if base_url already has it)"),
    }

    def __init__(self, model_name: str, **options: Any) -> None:
        super().__init__(model_name, **options)
        extra = self.extra_options
        version = extra.get("api_version", DEFAULT_API_VERSION)
        if not _API_VERSION.match(version):
            raise self._bad("api_version", f"a version such as 'v1' or 'v1beta1', got {version!r}")
        self.api_version: str = version
        if any(bad in model_name for bad in ("..", "?", "&", "#")):  # (google-genai refuses them too)
            raise self._bad(
                "model_name", f"a Gemini model name such as 'gemini-2.5-flash', got {model_name!r}"
            )
        credentials = extra.get("credentials")
        if credentials is not None and not (
            hasattr(credentials, "refresh") and hasattr(credentials, "token")
        ):
            raise self._bad(
                "credentials",
                f"a google.auth.credentials.Credentials object, got {type(credentials).__name__}",
            )
        if credentials is not None and self._api_key is not None:
            raise ConfigError(
                "'credentials' and 'api_key' cannot both be set: Vertex AI takes one of them "
                "(as google-genai's Client does).",
                key="api_key",
                config_name=self.config_name,
            )
        project: str | None = extra.get("project")
        location: str | None = extra.get("location")
        if self._api_key is None:
            # An express-mode key from the environment only where no credentials, project or
            # location are configured anywhere: they mean Google Cloud credentials
            # (google-genai's rule).
            if credentials is None and not (project or location or _env(PROJECT_ENV) or _env(LOCATION_ENV)):
                key = _env(*API_KEY_ENV)
                self._api_key = Secret(key) if key else None
            if self._api_key is None:
                project = project or _env(PROJECT_ENV)
                location = location or _env(LOCATION_ENV)
        if project is not None and not _PROJECT.match(project):
            raise self._bad("project", f"a Google Cloud project id such as 'my-project', got {project!r}")
        if location is not None and not _LOCATION.match(location):
            raise self._bad(
                "location", f"a Vertex AI location such as 'us-central1' or 'global', got {location!r}"
            )
        self.project: str | None = project
        self.location: str = location or DEFAULT_LOCATION
        if self._api_key is not None:
            # (google-genai strips it too: a pasted key often ends with a newline)
            self._api_key = Secret(self._api_key.reveal().strip())
            self._auth: GoogleCredentials | None = None
        else:
            self._auth = GoogleCredentials(credentials, provider=self.provider, extra=self.extra)

    def _bad(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"{key!r} must be {what}.", key=key, config_name=self.config_name)

    @property
    def credentials(self) -> Any | None:
        """The google-auth credentials in use (``None`` with an API key, or before
        Application Default Credentials are loaded by the first call)."""
        return None if self._auth is None else self._auth.credentials

    def _make_client(self) -> Any:
        return api_key_client(self, self._api_key)

    def _project(self) -> str | None:
        """The project: configured, or (with credentials) the one the credentials name."""
        if self.project or self._auth is None:
            return self.project
        named = self._auth.project or getattr(self._auth.credentials, "project_id", None)
        if isinstance(named, str) and _PROJECT.match(named):
            return named
        raise ConfigError(
            f"no Google Cloud project for {self.model_type}: set 'project' in the config or the "
            f"{PROJECT_ENV} environment variable (the credentials in use name none).",
            key="project",
            config_name=self.config_name,
        )

    def _root(self, with_project: bool) -> str:
        """``https://{host}`` of the calls (or ``base_url``); without a project (express
        mode) every location is served by the global host."""
        location = self.location
        if self.base_url:
            return self.base_url.rstrip("/")
        if location == DEFAULT_LOCATION or not with_project:
            return f"https://{_GLOBAL_HOST}"
        if location in _MULTI_REGIONS:
            return f"https://aiplatform.{location}.rep.googleapis.com"
        return f"https://{location}-aiplatform.googleapis.com"

    def _server_url(self) -> str:
        # (For telemetry's server.address, at the call: with credentials there is a
        # project, configured or named by them when they load.)
        return self._root(self.project is not None or self._auth is not None)

    def _url(self, stream: bool) -> str:
        """The endpoint of one call."""
        project = self._project()
        location = self.location
        root = self._root(project is not None)
        model = self.model_name.strip()
        if not model.startswith(("projects/", "publishers/", "models/")):
            publisher, slash, name = model.partition("/")
            model = f"publishers/{publisher}/models/{name}" if slash else f"publishers/google/models/{model}"
        if project is not None and not model.startswith("projects/"):
            model = f"projects/{project}/locations/{location}/{model}"
        version = f"/{self.api_version}" if self.api_version else ""
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{root}{version}/{model}:{method}"

    async def _open(self, request: ChatRequest) -> Upstream:
        if self._auth is not None and self._auth.credentials is None:
            await self._auth.token()  # ADC are loaded first: they may name the project
        # The URL before the token: a missing project is a ConfigError, not a refresh.
        url = self._url(request.stream)
        secret = self._api_key
        headers: Any = None
        if self._auth is not None:
            secret = await self._auth.token()
            headers = _bearer(secret, self._auth.quota_project)
        try:
            return await post_json(
                self._client(),
                url,
                build_request_body(request),
                provider=self.provider,
                secret=secret,
                stream=request.stream,
                mapper=lambda: GeminiStreamMapper(self.provider),
                complete=lambda obj: response_deltas(obj, self.provider),
                headers=headers,
            )
        except ProviderHTTPError as exc:
            raise refine_http_error(exc) from None


def _bearer(token: Secret, quota_project: str | None) -> Any:
    """The request's auth headers, as an ``httpx.Headers`` (whose repr masks
    ``authorization``): the token is revealed only inside this expression."""
    import httpx

    return httpx.Headers(
        {"authorization": "Bearer " + token.reveal()}
        | ({"x-goog-user-project": quota_project} if quota_project else {})
    )
