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

from ._config import get_model, load_model, load_model_configs, registered_models
from ._config_keys import DEFAULTS, ModelConfig
from ._delivery import Delivery, ResponseCallback, default_output, deliver, get_default_output
from ._delta import ReasoningDelta, TextDelta, ToolCallDelta
from ._errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    MissingDependencyError,
    ModelFetchError,
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
from ._events import EndEvent, EndStatus, ReasoningEvent, ResponseEvent, StartEvent, TextEvent, ToolCallEvent
from ._finish import FinishReason
from ._providers.openai._wrapper import OpenAIChatWrapper
from ._registry import model_types, register_model_type
from ._response import BlockingReadWarning, ModelResponse, StreamChunk, StreamDelta
from ._secret import Secret
from ._sinks import CallbackSink, ConsoleSink, Sink
from ._tools import ToolArgumentsError, ToolCall
from ._usage import Usage, UsageSource
from ._version import __version__
from ._wrapper import ChatRequest, ModelWrapper, Upstream

__all__ = [
    "AuthenticationError",
    "BlockingReadWarning",
    "CallbackSink",
    "ChatRequest",
    "ConfigError",
    "ConsoleSink",
    "DEFAULTS",
    "Delivery",
    "EndEvent",
    "EndStatus",
    "FinishReason",
    "InputError",
    "MissingDependencyError",
    "ModelFetchError",
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
    "ReasoningEvent",
    "ResponseCallback",
    "ResponseEvent",
    "Secret",
    "ServerError",
    "Sink",
    "StartEvent",
    "StreamChunk",
    "StreamDelta",
    "StreamError",
    "StreamInterruptedError",
    "StreamProtocolError",
    "StreamTimeoutError",
    "StreamwrapError",
    "TextDelta",
    "TextEvent",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEvent",
    "Upstream",
    "Usage",
    "UsageSource",
    "__version__",
    "default_output",
    "deliver",
    "get_default_output",
    "get_model",
    "load_model",
    "load_model_configs",
    "model_types",
    "register_model_type",
    "registered_models",
]
