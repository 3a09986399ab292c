"""``zhipuai_chat``: Zhipu's GLM models through their OpenAI-compatible API.

GLM's ``/api/paas/v4/chat/completions`` speaks the OpenAI chat-completions wire format, so
this is ``openai_chat`` with Zhipu's endpoint and environment variables: the ``openai``
client sends the request (the Zhipu SDKs have no asyncio client, and ``zai-sdk`` builds
a pydantic object per chunk too), streamwrap's shared OpenAI wire mapper decodes it.
``reasoning_content`` deltas become reasoning; usage comes on the chunk that carries the
finish reason, unasked, so ``stream_options`` is not sent.

The default endpoint is BigModel's (mainland China), ``https://open.bigmodel.cn/api/paas/v4``;
Z.ai's international one is ``https://api.z.ai/api/paas/v4`` (its coding plan:
``https://api.z.ai/api/coding/paas/v4``): set ``base_url`` or ``$ZHIPUAI_BASE_URL``.
GLM-specific parameters such as ``thinking={"type": "enabled"}``, ``do_sample`` or
``tool_stream`` go in ``generate_args`` or the call; they are sent in the request body.
"""

from __future__ import annotations

from typing import ClassVar

from ._wrapper import OpenAIChatWrapper

__all__ = ["ZhipuAIChatWrapper"]


class ZhipuAIChatWrapper(OpenAIChatWrapper):
    """GLM chat (BigModel / Z.ai) over the OpenAI-compatible API.

    Without ``api_key`` it reads ``$ZHIPUAI_API_KEY`` (the ``zhipuai`` SDK's variable),
    then ``$ZAI_API_KEY`` (``zai-sdk``'s); without ``base_url``, ``$ZHIPUAI_BASE_URL``
    then ``$ZAI_BASE_URL``.
    """

    model_type: ClassVar[str] = "zhipuai_chat"
    provider: ClassVar[str] = "zhipuai"
    price_provider_id: ClassVar[str | None] = "zhipuai"
    gen_ai_provider_name: ClassVar[str] = "zhipuai"
    extra: ClassVar[str] = "zhipuai"
    api_key_env: ClassVar[tuple[str, ...]] = ("ZHIPUAI_API_KEY", "ZAI_API_KEY")
    base_url_env: ClassVar[tuple[str, ...]] = ("ZHIPUAI_BASE_URL", "ZAI_BASE_URL")
    default_base_url: ClassVar[str] = "https://open.bigmodel.cn/api/paas/v4"
    # GLM reports usage on its last chunk without being asked, and its own SDKs never
    # send the option: nothing to gain from sending an OpenAI extension.
    ask_stream_usage: ClassVar[bool] = False
