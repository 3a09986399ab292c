"""An OpenAI-compatible provider emulator for testing streaming LLM clients.

:class:`Emulator` is a real HTTP/1.1 server on 127.0.0.1 that answers
``POST .../chat/completions`` with scripted replies, streamed as server-sent
events (``"stream": true``) or as one JSON object.  Replies script text,
reasoning, tool calls, usage, pacing and faults; every request is recorded.
It runs on its own thread, so it serves sync, asyncio and trio tests alike::

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

``python -m streamwrap.testing --help`` runs one in the foreground for
benchmarks that need the server in another process.
"""

from ._emulator import Emulator
from ._recorded import RecordedRequest
from ._script import Fault, Reply, ToolCallSpec

__all__ = ["Emulator", "Fault", "RecordedRequest", "Reply", "ToolCallSpec"]
