"""trio works too (provider I/O runs on streamwrap's own thread), and leaving a loop early
closes the upstream connection: the response reports finish_reason == "cancelled"."""

import trio

import streamwrap
from streamwrap.testing import Emulator, Reply


async def main() -> None:
    with Emulator() as emu:
        emu.script(Reply(text=[f"token{i} " for i in range(1000)], delay=0.01))
        model = streamwrap.load_model(
            {"model_type": "openai_chat", "model_name": "m", "stream": True, "base_url": emu.openai_base_url}
        )
        response = await model("Count forever")
        async for _, text_so_far in response.stream:
            if len(text_so_far) > 40:
                break  # stop reading: the connection is closed, nothing leaks
        await response.await_done()
        print(repr(response.text), response.finish_reason)
        await model.aclose()


if __name__ == "__main__":
    trio.run(main)
