"""An example streamwrap provider: ``model_type: example_chat``.

Chat completions from any server that speaks OpenAI's chat-completions API (vLLM,
llama.cpp's server, a proxy, streamwrap's own emulator), sent with httpx rather than the
``openai`` SDK. Built only from :mod:`streamwrap.providers` and the public names of
:mod:`streamwrap`: the wrapper (``wrapper``) sends the request, the mapper (``wire``)
turns the streamed bytes into deltas.
"""

from .wrapper import ExampleChatWrapper

__all__ = ["ExampleChatWrapper"]
