"""A provider emulator for testing streaming LLM clients.

:class:`Emulator` is a real HTTP/1.1 server on 127.0.0.1 that answers model
requests with scripted replies.  Replies script text, reasoning, tool calls,
usage, pacing and faults once; the emulator renders them in the wire format
the request's path asks for, streamed or as one JSON body, and records every
request.  It runs on its own thread, so it serves sync, asyncio and trio tests
alike.  The dialects, and the base URL to hand each provider's client:

* OpenAI chat completions, ``POST .../chat/completions`` (SSE with ``"stream": true``):
  :attr:`Emulator.openai_base_url`.
* Azure OpenAI, ``POST /openai/deployments/{deployment}/chat/completions?api-version=...``
  (OpenAI's chunks with Azure's prompt-filter first chunk and content-filter results; the
  ``api-key`` header): :attr:`Emulator.azure_endpoint`.
* DashScope native, ``POST /api/v1/services/aigc/text-generation/generation``
  (and ``multimodal-generation``; SSE with ``X-DashScope-SSE: enable``, ``result_format``
  text or message, cumulative unless ``incremental_output``): :attr:`Emulator.dashscope_base_url`.
* Gemini, ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (CRLF SSE) and
  ``:generateContent``: :attr:`Emulator.gemini_base_url`.
* Ollama, ``POST /api/chat`` (NDJSON unless ``"stream": false``): :attr:`Emulator.ollama_base_url`.
* Anthropic Messages, ``POST /v1/messages`` (SSE with ``"stream": true``):
  :attr:`Emulator.anthropic_base_url`.
* Amazon Bedrock, ``POST /model/{modelId}/converse-stream`` and ``/converse`` (binary AWS
  event streams), and ``/invoke-with-response-stream`` and ``/invoke`` (Anthropic's events
  in event stream chunks): :attr:`Emulator.bedrock_endpoint_url`.
* Gemini on Vertex AI, ``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:streamGenerateContent?alt=sse``
  (Gemini's chunks; a bearer token or an express-mode ``x-goog-api-key``): :attr:`Emulator.vertex_base_url`.

Faults (:class:`Fault`) and error statuses take each provider's own shape.  Any API key
is accepted unless one is required with ``Emulator(api_key="...")``: then a missing or
wrong key is answered as each provider answers it (Ollama, which has no keys, is never
checked).  :meth:`Emulator.replay` serves recorded bytes verbatim on any path::

    import httpx
    from streamwrap.testing import Emulator, Fault, Reply

    with Emulator() as emu:
        emu.script(
            Reply(text=["Hel", "lo"]),
            Reply(status=429, headers={"Retry-After": "1"}),
            Reply(text="cut short", fault=Fault.drop_after(1)),
        )
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with httpx.stream("POST", emu.openai_base_url + "/chat/completions", json=body) as response:
            for line in response.iter_lines():
                print(line)
        assert emu.requests[0].json["messages"][0]["content"] == "hi"

        emu.script(Reply(text=["Hel", "lo"], reasoning="hm"))
        body = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}
        for line in httpx.post(emu.ollama_base_url + "/api/chat", json=body).text.splitlines():
            print(line)  # {"model":"emulator-1",...,"message":{...,"thinking":"hm"},"done":false} ...

``python -m streamwrap.testing`` runs one in the foreground (on port 8090; ``--port 0``
picks a free one, ``--api-key KEY`` requires a key) and prints the ``base_url`` to give
each dialect's client; ``--help`` says more.
"""

from ._emulator import Emulator
from ._recorded import RecordedRequest
from ._script import Fault, Reply, ToolCallSpec

__all__ = ["Emulator", "Fault", "RecordedRequest", "Reply", "ToolCallSpec"]
