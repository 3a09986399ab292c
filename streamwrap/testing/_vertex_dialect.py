"""Gemini on Vertex AI: ``POST /{v1|v1beta1}/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent?alt=sse``.

The Gemini dialect (the same bodies, chunks and CRLF framing) on Vertex AI's paths: a
publisher model of a project and location, the express-mode path without them
(``/v1/publishers/google/models/{model}:...``), a model of the project's registry
(``.../models/{id}``) or an endpoint (``.../endpoints/{id}``). What Vertex AI sends
differently, as its recordings show: every chunk before the last carries
``usageMetadata: {"trafficType": "ON_DEMAND"}`` only (the counts come with the last, beside
it), and each chunk has a ``createTime``. Its errors are Google's ``{"error": {"code", "message",
"status"}}`` with Vertex AI's words: 401 ``UNAUTHENTICATED`` for a missing or refused OAuth
token, 403 ``PERMISSION_DENIED`` naming the ``aiplatform.endpoints.predict`` permission,
404 naming the publisher model, 429 ``RESOURCE_EXHAUSTED``. Credentials travel as
``Authorization: Bearer TOKEN`` (Google Cloud credentials) or ``x-goog-api-key: KEY``
(express mode); with ``Emulator(api_key=...)`` either must carry it: a wrong key gets
Google's 400 ``API_KEY_INVALID``, a wrong token or none the 401.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from ._gemini_dialect import _JSON_HEADERS, _SSE_ERROR_HEADERS, GeminiDialect, _dumps, _error, _Renderer
from ._plan import Plan
from ._recorded import RecordedRequest
from ._render import Completion, IdSequence, fixed_plan

_SERVICE = "aiplatform.googleapis.com"
_TOKEN_HELP = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
_MESSAGES = {
    401: f"Request had invalid authentication credentials. {_TOKEN_HELP}",
    429: (
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
    ),
}
_WRONG_KEY_MESSAGE = "API key not valid. Please pass a valid API key."


def _unauthenticated(message: str, reason: str) -> dict[str, Any]:
    return {
        "code": 401,
        "message": message,
        "status": "UNAUTHENTICATED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "metadata": {
                    "method": "google.cloud.aiplatform.v1.PredictionService.StreamGenerateContent",
                    "service": _SERVICE,
                },
            }
        ],
    }


_NO_CREDENTIALS = _unauthenticated(
    f"Request is missing required authentication credential. {_TOKEN_HELP}", "CREDENTIALS_MISSING"
)
_WRONG_TOKEN = _unauthenticated(_MESSAGES[401], "ACCESS_TOKEN_TYPE_UNSUPPORTED")
_WRONG_KEY: dict[str, Any] = {
    "code": 400,
    "message": _WRONG_KEY_MESSAGE,
    "status": "INVALID_ARGUMENT",
    "details": [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": _SERVICE},
        }
    ],
}


class VertexDialect(GeminiDialect):
    """Renders replies as Vertex AI ``generateContent`` responses."""

    name = "vertex"
    path = re.compile(
        r".*/(?:v1|v1beta1)/(?P<resource>(?:projects/[^/]+/locations/[^/]+/)?"
        r"(?:publishers/[^/]+/models|models|endpoints)/(?P<model>[^/:]+))"
        r":(?P<method>streamGenerateContent|generateContent)"
    )

    def renderer(self, completion: Completion) -> _Renderer:
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return _Renderer(
            completion, usage_fields={"trafficType": "ON_DEMAND"}, fields={"createTime": created}
        )

    def default_error(self, status: int, request: RecordedRequest) -> dict[str, Any]:
        match = self.path.fullmatch(request.path.partition("?")[0])
        resource = match["resource"] if match else "publishers/google/models/unknown"
        if status == 401:
            return dict(_WRONG_TOKEN)
        if status == 403:
            return {
                "code": 403,
                "message": (
                    f"Permission 'aiplatform.endpoints.predict' denied on resource "
                    f"'//{_SERVICE}/{resource}' (or it may not exist)."
                ),
                "status": "PERMISSION_DENIED",
            }
        if status == 404:
            return {"code": 404, "message": f"Publisher Model `{resource}` not found.", "status": "NOT_FOUND"}
        error = _error(status)
        if status in _MESSAGES:
            error["message"] = _MESSAGES[status]
        return error

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """Vertex AI's refusal unless ``request`` carries ``api_key`` as its
        ``x-goog-api-key`` (express mode) or its bearer token."""
        _, _, query = request.path.partition("?")
        key = request.headers.get("x-goog-api-key") or next(iter(parse_qs(query).get("key", [])), None)
        token = request.bearer_token
        if api_key in (key, token):
            return None
        error = _WRONG_KEY if key else _WRONG_TOKEN if token else _NO_CREDENTIALS
        headers = _SSE_ERROR_HEADERS if self._mode(request)[1] else _JSON_HEADERS
        return fixed_plan(error["code"], _dumps({"error": error}, indent=2), {}, defaults=headers)


VERTEX = VertexDialect()
"""The dialect instance the route table uses."""
