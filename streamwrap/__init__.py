"""streamwrap: one async token-streaming call shape for every LLM provider.

    import streamwrap

    model = streamwrap.load_model({"model_type": "openai_chat", "model_name": "gpt-4o-mini",
                                   "stream": True})
    response = await model("Tell me a joke")
    async for is_last, text_so_far in response.stream:
        ...
    print(response.text, response.usage)

``import streamwrap`` imports no provider SDK; each is an optional extra.
"""

from __future__ import annotations

from ._config import DEFAULTS, ModelConfig, get_model, load_model, load_model_configs, registered_models
from ._delta import ReasoningDelta, TextDelta, ToolCallDelta
from ._errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    MissingDependencyError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    RateLimitError,
    ServerError,
    StreamError,
    StreamInterruptedError,
    StreamProtocolError,
    StreamTimeoutError,
    StreamwrapError,
)
from ._finish import FinishReason
from ._openai import OpenAIChatWrapper
from ._registry import model_types, register_model_type
from ._response import BlockingReadWarning, ModelResponse, StreamChunk, StreamDelta
from ._secret import Secret
from ._tools import ToolArgumentsError, ToolCall
from ._usage import Usage, UsageSource
from ._version import __version__
from ._wrapper import ChatRequest, ModelWrapper, Upstream

__all__ = [
    "DEFAULTS",
    "AuthenticationError",
    "BlockingReadWarning",
    "ChatRequest",
    "ConfigError",
    "FinishReason",
    "InputError",
    "MissingDependencyError",
    "ModelConfig",
    "ModelResponse",
    "ModelWrapper",
    "NotFoundError",
    "OpenAIChatWrapper",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderStreamError",
    "RateLimitError",
    "ReasoningDelta",
    "Secret",
    "ServerError",
    "StreamChunk",
    "StreamDelta",
    "StreamError",
    "StreamInterruptedError",
    "StreamProtocolError",
    "StreamTimeoutError",
    "StreamwrapError",
    "TextDelta",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "Upstream",
    "Usage",
    "UsageSource",
    "__version__",
    "get_model",
    "load_model",
    "load_model_configs",
    "model_types",
    "register_model_type",
    "registered_models",
]
