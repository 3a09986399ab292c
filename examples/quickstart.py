"""Stream a reply, then read the whole response's fields.

Runs offline: the provider emulator from ``streamwrap.testing`` plays an OpenAI-compatible
server on 127.0.0.1. Point ``base_url`` at any real server (or drop it and set
OPENAI_API_KEY) to talk to a real model.
"""

import asyncio

import streamwrap
from streamwrap.testing import Emulator, Reply


async def main() -> None:
    with Emulator() as emu:
        emu.script(
            Reply(reasoning="The user wants a joke. ", text="Why did the token cross the stream?", delay=0.05)
        )
        model = streamwrap.load_model(
            {
                "config_name": "demo",
                "model_type": "openai_chat",
                "model_name": "gpt-4o-mini",
                "stream": True,
                "base_url": emu.openai_base_url,
            }
        )
        response = await model("Tell me a joke")
        printed = 0
        async for is_last, text_so_far in response.stream:
            print(text_so_far[printed:], end="", flush=True)  # only the new suffix
            printed = len(text_so_far)
            if is_last:
                print()
        print("reasoning:", response.reasoning)
        print("usage:", response.usage)
        print("finish:", response.finish_reason, "| id:", response.id)
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
