"""``ollama_chat``: Ollama's native chat API (``POST {host}/api/chat``, NDJSON stream).

The ``ollama`` SDK builds a pydantic object per line and exposes no raw body, so this
wrapper sends the same request with httpx (``_transport._httpx_client``) and decodes the bytes with
streamwrap's own NDJSON decoder (``_wire``). The host is found as the SDK finds
it: ``base_url``, else ``$OLLAMA_HOST`` (``host``, ``host:port``, with or without a
scheme; port 11434 unless a scheme implies 80/443), else ``http://127.0.0.1:11434``.
``$OLLAMA_API_KEY`` (Ollama's cloud, or a proxy) is sent as a Bearer token.

OpenAI-style call parameters are translated: sampling settings go into Ollama's
``options`` (``max_tokens`` → ``num_predict``), while ``think``, ``format``,
``keep_alive`` and an explicit ``options`` dict stay at the top level.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from ..._errors import InputError
from ..._transport._httpx_client import make_httpx_client, post_json
from ..._wrapper import ChatRequest, ModelWrapper, Upstream
from ._wire import OllamaStreamMapper, chat_deltas

__all__ = ["OllamaChatWrapper", "ollama_messages", "ollama_options", "parse_ollama_host"]

_DEFAULT_PORT = 11434

# Call parameters that are top-level fields of Ollama's chat request, not model options.
_TOP_LEVEL = frozenset(("think", "format", "keep_alive", "logprobs", "top_logprobs"))
# OpenAI names → Ollama option names. Everything else that is not top level is passed
# into `options` unchanged: Ollama's own names (num_ctx, repeat_penalty, min_p, mirostat,
# ...) work as they are, and new options need no release of streamwrap.
_OPTION_NAMES = {"max_tokens": "num_predict", "max_completion_tokens": "num_predict"}


def parse_ollama_host(host: str | None) -> str:
    """The base URL for an ``OLLAMA_HOST``-style value, parsed as the ``ollama`` SDK does.

    ``None``/``""`` → ``http://127.0.0.1:11434``; ``example.com`` →
    ``http://example.com:11434``; ``https://example.com`` → ``https://example.com:443``;
    ``:8080`` → ``http://127.0.0.1:8080``; IPv6 literals in brackets; a path is kept
    without its trailing slash.
    """
    host, port = (host or "").strip(), _DEFAULT_PORT
    scheme, _, hostport = host.partition("://")
    if not hostport:
        scheme, hostport = "http", host
    elif scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    split = urllib.parse.urlsplit(f"{scheme}://{hostport}")
    name = split.hostname or "127.0.0.1"
    try:
        port = split.port or port
    except ValueError:
        raise InputError(f"invalid port in Ollama host {host!r}") from None
    try:
        if isinstance(ipaddress.ip_address(name), ipaddress.IPv6Address):
            name = f"[{name}]"  # urlsplit drops the brackets an IPv6 literal needs
    except ValueError:
        pass
    path = split.path.strip("/")
    return f"{scheme}://{name}:{port}/{path}" if path else f"{scheme}://{name}:{port}"


def ollama_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields for OpenAI-style call parameters (see the module docstring).

    ``extra_body`` is merged into the request as it is, as with ``openai_chat``;
    ``response_format`` (OpenAI's) becomes ``format``.
    """
    body: dict[str, Any] = {}
    options: dict[str, Any] = {}
    explicit_options: Mapping[str, Any] = {}
    for key, value in params.items():
        if key in _TOP_LEVEL:
            body[key] = value
        elif key == "options":
            if not isinstance(value, Mapping):
                raise InputError(
                    f"'options' must be a dict of Ollama model options, got {type(value).__name__}"
                )
            explicit_options = value
        elif key == "extra_body":
            continue
        elif key == "response_format":
            fmt = _format_from_response_format(value)
            if fmt is not None and "format" not in params:
                body["format"] = fmt
        elif key == "reasoning_effort":
            # OpenAI's knob; Ollama's `think` takes the same levels (gpt-oss) or a bool.
            if "think" not in params:
                body["think"] = False if value == "none" else value
        elif key == "stop":
            options["stop"] = [value] if isinstance(value, str) else value
        else:
            options[_OPTION_NAMES.get(key, key)] = value
    # An explicit `options` dict is Ollama's own spelling: it wins over translated names.
    options.update(explicit_options)
    if options:
        body["options"] = options
    extra_body = params.get("extra_body")
    if extra_body:
        if not isinstance(extra_body, Mapping):
            raise InputError(f"'extra_body' must be a dict, got {type(extra_body).__name__}")
        body.update(extra_body)
    return body


def _format_from_response_format(value: Any) -> Any:
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = value.get("json_schema")
        if isinstance(schema, Mapping) and isinstance(schema.get("schema"), Mapping):
            return schema["schema"]
    if kind == "text":
        return None
    raise InputError(
        "response_format must be {'type': 'json_object'}, {'type': 'json_schema', 'json_schema': "
        "{'schema': {...}}} or {'type': 'text'} for Ollama (or pass Ollama's own format=...); "
        f"got {value!r}"
    )


def ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-style messages in Ollama's shape.

    Assistant ``tool_calls`` carry their arguments as a JSON object rather than a string;
    a tool result names its tool (``tool_name``, found through ``tool_call_id``); content
    parts become text plus base64 ``images``; ``developer`` is sent as ``system``.
    """
    names_by_id: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "developer":
            role = "system"  # Ollama's chat templates know system, user, assistant, tool
        elif role == "function":
            role = "tool"
        converted: dict[str, Any] = {"role": role}
        text, images = _content(message.get("content"), i)
        converted["content"] = text
        if images:
            converted["images"] = [*message.get("images", ()), *images]
        elif message.get("images"):
            converted["images"] = message["images"]
        thinking = message.get("thinking") or message.get("reasoning_content") or message.get("reasoning")
        if thinking and role == "assistant":
            converted["thinking"] = thinking
        if message.get("tool_calls"):
            converted["tool_calls"] = [_tool_call(call, i, names_by_id) for call in message["tool_calls"]]
        if role == "tool":
            call_id = message.get("tool_call_id")
            name = message.get("tool_name") or message.get("name") or names_by_id.get(call_id or "")
            if name:
                converted["tool_name"] = name
            if call_id:
                converted["tool_call_id"] = call_id
        out.append(converted)
    return out


def _content(content: Any, i: int) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
                raise InputError(f"messages[{i}]: Ollama takes images inline: use a data:...;base64,... URL")
            images.append(url.partition(";base64,")[2])
        else:
            raise InputError(f"messages[{i}]: unsupported content part {kind!r} for Ollama")
    return "".join(texts), images


def _tool_call(call: Any, i: int, names_by_id: dict[str, str]) -> dict[str, Any]:
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        raise InputError(f"messages[{i}]: each tool call must be a dict with a 'function' dict")
    fn = call["function"]
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"messages[{i}]: a tool call has no function name")
    arguments = fn.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise InputError(
                f"messages[{i}]: arguments of tool call {name!r} are not JSON: {arguments[:200]!r}"
            ) from None
    if not isinstance(arguments, Mapping):
        raise InputError(f"messages[{i}]: arguments of tool call {name!r} must be a JSON object")
    call_id = call.get("id")
    if isinstance(call_id, str) and isinstance(name, str):
        names_by_id[call_id] = name
    converted: dict[str, Any] = {"function": {"name": name, "arguments": dict(arguments)}}
    if call_id:
        converted["id"] = call_id
    return converted


class OllamaChatWrapper(ModelWrapper):
    """Chat with a model served by Ollama, through its native ``/api/chat`` API.

    Streams ``thinking`` as reasoning, tool calls (complete, with ids ``call_<index>``),
    and the token counts of the final ``done`` line as usage. No API key is needed for a
    local server.
    """

    model_type: ClassVar[str] = "ollama_chat"
    provider: ClassVar[str] = "ollama"
    gen_ai_provider_name: ClassVar[str] = "ollama"
    extra: ClassVar[str] = "ollama"
    api_key_env: ClassVar[tuple[str, ...]] = ("OLLAMA_API_KEY",)
    base_url_env: ClassVar[tuple[str, ...]] = ("OLLAMA_HOST",)
    api_key_optional: ClassVar[bool] = True

    def _make_client(self) -> Any:
        return make_httpx_client(
            extra=self.extra,
            timeout=self.timeout,
            headers={"accept": "application/json"},
            client_args=self.client_args,
            secret=self._api_key,  # sent as "authorization: Bearer <key>"
        )

    def _server_url(self) -> str:
        return self._endpoint()

    def _endpoint(self) -> str:
        return parse_ollama_host(self.base_url) + "/api/chat"

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model_name,
            "messages": ollama_messages(request.messages),
            # Always explicit: Ollama streams when `stream` is absent.
            "stream": request.stream,
        }
        if request.tools:
            body["tools"] = request.tools
        body.update(ollama_options(request.params))
        return body

    async def _open(self, request: ChatRequest) -> Upstream:
        provider = self.provider
        return await post_json(
            self._client(),
            self._endpoint(),
            self._body(request),
            provider=provider,
            secret=self._api_key,
            stream=request.stream,
            mapper=lambda: OllamaStreamMapper(provider),
            complete=lambda obj: chat_deltas(obj, provider),
        )
