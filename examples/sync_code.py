"""The same objects from plain synchronous code: scripts, notebooks, Django views."""

import streamwrap
from streamwrap.testing import Emulator, Reply

with Emulator() as emu:
    emu.script(Reply(text="Streaming "), Reply(text="works in sync code too."))
    model = streamwrap.OpenAIChatWrapper("gpt-4o-mini", stream=True, base_url=emu.openai_base_url)

    # .text drains the stream lazily: code written for non-streaming responses keeps working.
    print(model.call_sync("first").text)

    # Or follow it as it arrives.
    for is_last, text_so_far in model.call_sync("second").stream_sync():
        if is_last:
            print(text_so_far)
    model.close()
