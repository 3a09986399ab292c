"""``gemini_chat``: Google's Gemini API (``generativelanguage.googleapis.com``), natively.

Why no SDK in the loop: ``google-genai`` is Google's current SDK and the reference this
module follows (its endpoints, headers, environment variables; the benchmarks compare
against it), but it parses every chunk into pydantic objects and has no public way to read
the raw body. So streamwrap sends the same request itself with httpx (``_transport._httpx_client``)
and decodes the bytes with its own SSE decoder (``_wire``), the same split as
``openai_chat``. ``google-generativeai``, the older SDK, is end-of-life (deprecated;
support ended 2025-11-30), so it is not a backend either. The ``gemini`` extra installs
only httpx.

The request, as google-genai sends it for the Gemini API::

    POST {base_url}/{api_version}/models/{model}:streamGenerateContent?alt=sse   (stream)
    POST {base_url}/{api_version}/models/{model}:generateContent                 (otherwise)
    x-goog-api-key: KEY

``api_version`` is pinned (config key, default ``"v1beta"``, where thinking, thought
signatures, ``systemInstruction`` and ``parametersJsonSchema`` all exist) rather than left
to the SDK's default (``v1`` in google-genai 3.x, or ``$GOOGLE_GENAI_API_VERSION``), so the
URL is the same with any ``base_url``. Set ``api_version: ""`` when ``base_url`` already
ends with the version. The key comes from ``api_key``, else ``$GOOGLE_API_KEY``, else
``$GEMINI_API_KEY`` (google-genai's order); the base URL from ``base_url``, else
``$GOOGLE_GEMINI_BASE_URL``. Gemini on Vertex AI (Google Cloud credentials, project URLs)
is ``vertex_gemini_chat`` (``_providers/vertex``), which reuses this module's request builder.

Messages are OpenAI-style and converted: ``system``/``developer`` → ``systemInstruction``;
``user`` → role ``user``; ``assistant`` → role ``model`` (text parts, and ``tool_calls`` as
``functionCall`` parts with their ``thoughtSignature`` put back); ``tool`` →
``functionResponse`` parts (the name found from the matching call). Consecutive turns of
one role are merged, so the results of parallel calls travel in one turn, as Gemini
requires. Tools become ``functionDeclarations`` with the JSON schema as
``parametersJsonSchema`` (what google-genai itself sends for Python functions and MCP
tools: the full JSON Schema, not the OpenAPI subset of ``parameters``).

Thought signatures must go back with the calls they came with (Gemini 3 answers 4xx
otherwise): put ``response.tool_calls`` themselves in the assistant message, or dicts that
keep ``"extra": {"thought_signature": ...}`` (Gemini's OpenAI-compatible
``extra_content.google.thought_signature`` is read too). A wrong API key, which Gemini
answers with HTTP 400 ``API_KEY_INVALID``, raises :class:`AuthenticationError`.

Call arguments (``generate_args`` and keyword arguments of a call) go to
``generationConfig``: ``temperature``, ``top_p``, ``top_k``, ``max_tokens`` /
``max_output_tokens``, ``stop``, ``seed``, ``response_mime_type``, ``thinking_config``,
and any other key, camel-cased (``presence_penalty`` → ``presencePenalty``): the API
rejects unknown names itself, with a message naming them. ``generationConfig`` (a dict) is
merged last. Request-level keys: ``safety_settings``, ``tool_config``, ``cached_content``;
``tool_choice`` and ``response_format`` in OpenAI's form are translated; ``extra_body`` is
merged into the request body as is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ..._block_request import ContentBlocks, append_turn, stop_sequences
from ..._errors import AuthenticationError, ConfigError, InputError, ProviderHTTPError
from ..._secret import Secret
from ..._tools import sent_call
from ..._transport._httpx_client import make_httpx_client, post_json
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ._wire import GeminiStreamMapper, response_deltas

__all__ = ["GeminiChatWrapper", "api_key_client", "build_request_body", "refine_http_error"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1beta"
_API_VERSION = re.compile(r"^[A-Za-z0-9._-]*$")

# OpenAI-style names whose Gemini name is not just the camel-cased one.
_GENERATION_NAMES: dict[str, str] = {
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "stop": "stopSequences",
    "n": "candidateCount",
}
# Keys that belong to the request body itself, not to generationConfig.
_REQUEST_NAMES: dict[str, str] = {
    "safety_settings": "safetySettings",
    "safetySettings": "safetySettings",
    "tool_config": "toolConfig",
    "toolConfig": "toolConfig",
    "cached_content": "cachedContent",
    "cachedContent": "cachedContent",
}
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# Keys of a content part in Gemini's own form, passed through untouched.
_NATIVE_PART_KEYS = frozenset(
    (
        "text",
        "inlineData",
        "inline_data",
        "fileData",
        "file_data",
        "functionCall",
        "function_call",
        "functionResponse",
        "function_response",
        "executableCode",
        "codeExecutionResult",
    )
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def api_key_client(wrapper: ModelWrapper, key: Secret | None) -> Any:
    """The httpx client of ``wrapper`` that sends ``key`` as Google's ``x-goog-api-key``
    header (the Gemini API's, and Vertex AI's express mode)."""
    return make_httpx_client(
        extra=wrapper.extra,
        timeout=wrapper.timeout,
        client_args=wrapper.client_args,
        secret=key,
        key_header="x-goog-api-key",
        key_prefix="",
    )


class GeminiChatWrapper(ModelWrapper):
    """The Gemini API over its native ``streamGenerateContent`` protocol.

    ``base_url`` points it at any server that speaks that protocol (a proxy, an emulator);
    ``api_version`` (default ``"v1beta"``) is inserted after it.
    """

    model_type: ClassVar[str] = "gemini_chat"
    provider: ClassVar[str] = "gemini"
    #: genai-prices' id for Gemini's prices (response.cost)
    price_provider_id: ClassVar[str | None] = "google"
    gen_ai_provider_name: ClassVar[str] = "gcp.gemini"
    extra: ClassVar[str] = "gemini"
    # google-genai's order: GOOGLE_API_KEY wins when both are set.
    api_key_env: ClassVar[tuple[str, ...]] = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
    base_url_env: ClassVar[tuple[str, ...]] = ("GOOGLE_GEMINI_BASE_URL",)
    config_keys: ClassVar[Mapping[str, tuple[tuple[type, ...], str]]] = {
        "api_version": ((str,), "an API version such as 'v1beta' or 'v1' ('' if base_url already has it)"),
    }

    def __init__(self, model_name: str, **options: Any) -> None:
        super().__init__(model_name, **options)
        version = self.extra_options.get("api_version", DEFAULT_API_VERSION)
        if not _API_VERSION.match(version):
            raise ConfigError(
                f"'api_version' must be a version such as 'v1beta', got {version!r}.",
                key="api_version",
                config_name=self.config_name,
            )
        self.api_version: str = version
        # google-genai refuses these too: they would change the URL's meaning.
        if any(bad in model_name for bad in ("..", "?", "&", "#")):
            raise ConfigError(
                f"'model_name' must be a Gemini model name such as 'gemini-2.5-flash', got {model_name!r}.",
                key="model_name",
                config_name=self.config_name,
            )
        if self._api_key is not None:
            # (google-genai strips it too: a pasted key often ends with a newline)
            self._api_key = Secret(self._api_key.reveal().strip())

    def _make_client(self) -> Any:
        return api_key_client(self, self._api_key)

    def _server_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URL

    def _url(self, stream: bool) -> str:
        """The endpoint of one call (``models/`` is added unless the name has a collection)."""
        base = (self.base_url or DEFAULT_BASE_URL).rstrip("/")
        model = self.model_name.strip()
        if not model.startswith(("models/", "tunedModels/")):
            model = f"models/{model}"
        version = f"/{self.api_version}" if self.api_version else ""
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{base}{version}/{model}:{method}"

    async def _open(self, request: ChatRequest) -> Upstream:
        try:
            return await post_json(
                self._client(),
                self._url(request.stream),
                build_request_body(request),
                provider=self.provider,
                secret=self._api_key,
                stream=request.stream,
                mapper=lambda: GeminiStreamMapper(self.provider),
                complete=lambda obj: response_deltas(obj, self.provider),
            )
        except ProviderHTTPError as exc:
            raise refine_http_error(exc) from None


def refine_http_error(exc: ProviderHTTPError) -> ProviderHTTPError:
    """Gemini answers a wrong API key with HTTP 400 (``reason: API_KEY_INVALID``), not 401:
    raise it as the :class:`AuthenticationError` that callers catch for every provider."""
    if exc.status_code != 400 or type(exc) is not ProviderHTTPError:
        return exc
    body = exc.body
    details = body.get("error", {}).get("details") if isinstance(body, Mapping) else None
    if not isinstance(details, list):
        return exc
    if any(isinstance(d, Mapping) and d.get("reason") == "API_KEY_INVALID" for d in details):
        return AuthenticationError(
            exc.message,
            provider=exc.provider,
            status_code=exc.status_code,
            body=exc.body,
            retry_after=exc.retry_after,
        )
    return exc


# -- the request body -------------------------------------------------------------------


def build_request_body(request: ChatRequest) -> dict[str, Any]:
    """The ``generateContent`` JSON body of a call (the same for streaming)."""
    system, contents = _contents(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t["function"]) for t in request.tools]}]
    generation, top, extra_body = _params(request.params)
    body.update(top)
    if generation:
        body["generationConfig"] = generation
    body.update(extra_body)
    return body


def _declaration(fn: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": fn["name"]}
    if fn.get("description"):
        out["description"] = fn["description"]
    out["parametersJsonSchema"] = fn["parameters"]
    return out


def _params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Split call arguments into generationConfig, request-level keys and ``extra_body``."""
    generation: dict[str, Any] = {}
    top: dict[str, Any] = {}
    raw_generation: dict[str, Any] = {}
    extra_body: dict[str, Any] = {}
    tool_choice: Any = None
    for key, value in params.items():
        if value is None:
            continue  # "use the provider's default"
        if key in ("generationConfig", "generation_config"):
            raw_generation.update(_mapping(value, key))
        elif key == "extra_body":
            extra_body.update(_mapping(value, key))
        elif key in _REQUEST_NAMES:
            top[_REQUEST_NAMES[key]] = value
        elif key == "tool_choice":
            tool_choice = value
        elif key == "response_format":
            generation.update(_response_format(value))
        elif key == "stop":
            generation["stopSequences"] = stop_sequences(value)
        else:
            generation[_GENERATION_NAMES.get(key) or _camel(key)] = value
    if tool_choice is not None and "toolConfig" not in top:
        top["toolConfig"] = {"functionCallingConfig": _tool_choice(tool_choice)}
    generation.update(raw_generation)
    return generation, top, extra_body


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{key!r} must be a dict, got {type(value).__name__}")
    return value


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _TOOL_CHOICE_MODES:
        return {"mode": _TOOL_CHOICE_MODES[choice]}
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if isinstance(name, str) and name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise InputError(
        f"tool_choice must be 'auto', 'none', 'required' or {{'type': 'function', 'function': "
        f"{{'name': ...}}}}, got {choice!r}"
    )


def _response_format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if isinstance(schema, Mapping):
            return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise InputError(
        "response_format must be {'type': 'text'}, {'type': 'json_object'} or "
        f"{{'type': 'json_schema', 'json_schema': {{'schema': {{...}}}}}}, got {fmt!r}"
    )


# -- messages ---------------------------------------------------------------------------


def _contents(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(systemInstruction parts, contents)`` of OpenAI-style messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    for i, message in enumerate(messages):
        role = message["role"]
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_PARTS.blocks(content, i, role))
        elif role == "user":
            append_turn(contents, "user", _PARTS.blocks(content, i, role), "parts")
        elif role == "assistant":
            parts = _PARTS.blocks(content, i, role) if content else []
            for call in message.get("tool_calls") or ():
                part, call_id, name = _call_part(call, i)
                if call_id:
                    call_names[call_id] = name
                parts.append(part)
            append_turn(contents, "model", parts, "parts")
        else:  # "tool", or the legacy "function" (which names itself and has no id)
            result_id = message.get("tool_call_id")
            # The matching call names the function; a message's own "name" is the fallback
            # (AgentScope puts the speaker's name there).
            result_name = call_names.get(result_id) if isinstance(result_id, str) else None
            result_name = result_name or message.get("name")
            if not isinstance(result_name, str) or not result_name:
                raise InputError(
                    f"messages[{i}] ({role}): cannot tell which function this result answers: "
                    f"no earlier assistant tool call has id {result_id!r}, and it has no 'name'"
                )
            response: dict[str, Any] = {"name": result_name, "response": _result_object(content)}
            if isinstance(result_id, str) and result_id:
                response["id"] = result_id
            append_turn(contents, "user", [{"functionResponse": response}], "parts")
    return system, contents


class _Parts(ContentBlocks):
    """Gemini's parts (the walk is shared: see ``streamwrap._block_request``)."""

    model_type = "gemini_chat"
    hint = "(use 'text', 'image_url' with a data: URL, or a Gemini part such as {'inlineData': ...})"

    def text(self, text: str, part: Mapping[str, Any] | None) -> dict[str, Any]:
        return {"text": text}

    def image(self, image: Any, i: int, j: int) -> dict[str, Any]:
        url = image.get("url") if isinstance(image, Mapping) else image
        if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
            mime, _, data = url[5:].partition(";base64,")
            return {"inlineData": {"mimeType": mime, "data": data}}
        raise InputError(
            f"messages[{i}].content[{j}]: gemini_chat needs images inline, as a 'data:<mime>;base64,...' URL "
            "(or a Gemini {'fileData': {'fileUri', 'mimeType'}} part)"
        )

    def is_native(self, part: Mapping[str, Any]) -> bool:
        return part.get("type") is None and not _NATIVE_PART_KEYS.isdisjoint(part)


_PARTS = _Parts()


def _call_part(call: Any, i: int) -> tuple[dict[str, Any], str | None, str]:
    """A ``functionCall`` part from an OpenAI-style tool call dict or a :class:`ToolCall`."""
    sent = sent_call(call, i)
    signature = sent.extra.get("thought_signature") if sent.extra is not None else None
    if signature is None and isinstance(call, Mapping):
        # Gemini's OpenAI-compatible API carries it as extra_content.google.thought_signature.
        extra_content = call.get("extra_content")
        google = extra_content.get("google") if isinstance(extra_content, Mapping) else None
        signature = google.get("thought_signature") if isinstance(google, Mapping) else None
    function: dict[str, Any] = {"name": sent.name, "args": sent.arguments}
    if sent.id is not None:
        function["id"] = sent.id
    part: dict[str, Any] = {"functionCall": function}
    if signature:
        part["thoughtSignature"] = signature
    return part, sent.id, sent.name


def _result_object(content: Any) -> dict[str, Any]:
    """A tool result as the JSON object ``functionResponse.response`` must be: a result
    that is a JSON object is sent as is, anything else as ``{"result": value}``."""
    if isinstance(content, list):
        content = "".join(
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in content
            if isinstance(p, (str, Mapping))
        )
    if isinstance(content, Mapping):
        return dict(content)
    value: Any = content
    if isinstance(content, str):
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            value = content
    return value if isinstance(value, dict) else {"result": value}
