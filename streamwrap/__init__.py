"""streamwrap: one async token-streaming call shape for every LLM provider.

    import streamwrap

    model = streamwrap.load_model({"model_type": "openai_chat", "model_name": "gpt-4o-mini",
                                   "stream": True})
    response = await model("Tell me a joke")
    async for is_last, text_so_far in response.stream:
        ...
    print(response.text, response.usage)

``import streamwrap`` imports no provider SDK (each is an optional extra) and no provider
module: the wrapper classes (``streamwrap.OpenAIChatWrapper`` and the others) are imported
when first named. Writing a provider of your own: :mod:`streamwrap.providers`.
"""

from __future__ import annotations

import typing as _typing

from ._config import get_model, load_model, load_model_configs, registered_models
from ._config_keys import DEFAULTS, ModelConfig
from ._cost import Cost, CostItem
from ._delivery import Delivery, ResponseCallback, default_output, deliver, get_default_output
from ._delta import ReasoningDelta, TextDelta, ToolCallDelta
from ._errors import (
    AuthenticationError,
    ConfigError,
    ContentFilterError,
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
from ._registry import builtin_wrapper as _builtin_wrapper
from ._registry import model_types, register_model_type
from ._response import BlockingReadWarning, ModelResponse, StreamChunk, StreamDelta
from ._secret import Secret
from ._sinks import CallbackSink, ConsoleSink, Sink
from ._tools import ToolArgumentsError, ToolCall
from ._usage import Usage, UsageSource
from ._usage_summary import UsageRow, usage_summary
from ._version import __version__
from ._wrapper import ChatRequest, ModelWrapper, Upstream

if _typing.TYPE_CHECKING:
    # For type checkers and IDEs; at run time, ``__getattr__`` below imports each on first use.
    from ._providers.anthropic._wrapper import AnthropicChatWrapper
    from ._providers.bedrock._wrapper import BedrockChatWrapper
    from ._providers.dashscope._wrapper import DashScopeChatWrapper
    from ._providers.gemini._wrapper import GeminiChatWrapper
    from ._providers.litellm._wrapper import LiteLLMChatWrapper
    from ._providers.llamacpp._wrapper import LocalChatWrapper
    from ._providers.ollama._wrapper import OllamaChatWrapper
    from ._providers.openai._azure import AzureOpenAIChatWrapper
    from ._providers.openai._responses_wrapper import OpenAIResponsesWrapper
    from ._providers.openai._wrapper import OpenAIChatWrapper
    from ._providers.openai._zhipuai import ZhipuAIChatWrapper
    from ._providers.vertex._wrapper import VertexGeminiChatWrapper
else:

    def __getattr__(name: str) -> type[ModelWrapper]:
        # The built-in wrapper classes, named in __all__, are found through the registry's
        # import strings (PEP 562). Kept from type checkers: they would take every unknown
        # attribute of the module for one.
        wrapper = _builtin_wrapper(name)
        if wrapper is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = wrapper  # once imported, an ordinary attribute
        return wrapper

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})


__all__ = [
    "AnthropicChatWrapper",
    "AuthenticationError",
    "AzureOpenAIChatWrapper",
    "BedrockChatWrapper",
    "BlockingReadWarning",
    "CallbackSink",
    "ChatRequest",
    "ConfigError",
    "ConsoleSink",
    "ContentFilterError",
    "Cost",
    "CostItem",
    "DashScopeChatWrapper",
    "DEFAULTS",
    "Delivery",
    "EndEvent",
    "EndStatus",
    "FinishReason",
    "GeminiChatWrapper",
    "InputError",
    "LiteLLMChatWrapper",
    "LocalChatWrapper",
    "MissingDependencyError",
    "ModelFetchError",
    "ModelConfig",
    "ModelResponse",
    "ModelWrapper",
    "NotFoundError",
    "OllamaChatWrapper",
    "OpenAIChatWrapper",
    "OpenAIResponsesWrapper",
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
    "UsageRow",
    "UsageSource",
    "VertexGeminiChatWrapper",
    "ZhipuAIChatWrapper",
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
    "usage_summary",
]
