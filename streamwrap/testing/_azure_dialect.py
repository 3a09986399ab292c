"""Azure OpenAI's chat completions: ``POST /openai/deployments/{deployment}/chat/completions
?api-version=...``.

OpenAI's dialect with Azure's additions, as the service sends them: a first chunk with
``choices: []``, an empty id and model, ``created: 0`` and the prompt's
``prompt_filter_results``, sent as soon as the prompt has passed the filter (before any
delay: it is not content); ``content_filter_results`` on every choice (severities on
content chunks, ``{}`` on the finish chunk). The key travels in the ``api-key`` header (a
Microsoft Entra ID token as ``Authorization: Bearer``); a missing or wrong one, and a
request without ``api-version``, get Azure's gateway errors (``{"error": {"code": "401",
"message": ...}}``), whose code is the status as a string. A prompt the filter blocks is
scripted as ``Reply(status=400, error={..., "code": "content_filter", "innererror":
{...}})``. Non-streaming replies are OpenAI's. The ``/openai/v1/`` endpoint is OpenAI's
dialect (its path ends in ``/chat/completions``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ._openai_dialect import OpenAIDialect, stream
from ._plan import Plan
from ._recorded import RecordedRequest
from ._render import Completion, IdSequence, fixed_plan
from ._script import Reply

_SAFE = {"filtered": False, "severity": "safe"}
# What Azure's default filter reports for a harmless prompt and each harmless chunk.
_CONTENT_FILTERS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
_PROMPT_FILTERS = {**_CONTENT_FILTERS, "jailbreak": {"filtered": False, "detected": False}}
_PROMPT_FILTER_CHUNK = (
    b"data: "
    + orjson.dumps(
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _PROMPT_FILTERS}],
        }
    )
    + b"\n\n"
)
_CHOICE_FILTERS = b',"content_filter_results":' + orjson.dumps(_CONTENT_FILTERS)
_FINISH_FILTERS = b',"content_filter_results":{}'

# Azure's gateway answers (not OpenAI's): the code is the status, as a string.
_ACCESS_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a"
    " valid key for an active subscription and use a correct regional API endpoint for your resource."
)
_GATEWAY_ERRORS = {401: _ACCESS_DENIED, 404: "Resource not found"}


def _gateway_error(status: int, message: str) -> dict[str, Any]:
    return {"code": str(status), "message": message}


def _gateway_plan(status: int, message: str, headers: Mapping[str, str] | None = None) -> Plan:
    return fixed_plan(status, orjson.dumps({"error": _gateway_error(status, message)}), headers or {}, 0.0)


class AzureOpenAIDialect(OpenAIDialect):
    """Renders replies as Azure OpenAI chat completions of a deployment."""

    name = "azure"
    path = re.compile(r"/openai/deployments/[^/]+/chat/completions")

    def render(
        self, reply: Reply, request: RecordedRequest, body: Mapping[str, Any], ids: IdSequence
    ) -> Plan:
        """Azure's 404 without ``api-version``; otherwise OpenAI's answer, with Azure's chunks."""
        if not parse_qs(urlsplit(request.path).query).get("api-version"):
            return _gateway_plan(404, _GATEWAY_ERRORS[404])
        return super().render(reply, request, body, ids)

    def default_error(self, status: int) -> dict[str, Any]:
        if status in _GATEWAY_ERRORS:
            return _gateway_error(status, _GATEWAY_ERRORS[status])
        return super().default_error(status)

    def stream(self, reply: Reply, completion: Completion, *, send_usage: bool) -> Plan:
        return stream(
            reply,
            completion,
            send_usage=send_usage,
            opening=(_PROMPT_FILTER_CHUNK,),
            choice_extra=_CHOICE_FILTERS,
            finish_extra=_FINISH_FILTERS,
        )

    def refuse_key(self, request: RecordedRequest, api_key: str, ids: IdSequence) -> Plan | None:
        """Azure's 401 unless ``request`` carries ``api-key: <api_key>`` (or the same
        credential as an Entra ID ``Authorization: Bearer`` token)."""
        if api_key in (request.headers.get("api-key"), request.bearer_token):
            return None
        return _gateway_plan(401, _ACCESS_DENIED)


AZURE = AzureOpenAIDialect()
"""The dialect instance the route table uses."""
