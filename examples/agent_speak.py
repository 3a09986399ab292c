"""An AgentScope-style agent: ``self.speak(response.stream)`` types the reply out, and the
same response then goes into memory without a second request.

Two agents talk. Each streams its turn to the terminal; a transcript callback set with
``streamwrap.default_output`` hears every reply of the conversation (as a request handler
in a server would, for its own request only), with usage, exactly once per reply.

Runs offline: the provider emulator plays an OpenAI-compatible server on 127.0.0.1.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import streamwrap
from streamwrap.testing import Emulator, Reply


class DialogAgent:
    def __init__(self, name: str, sys_prompt: str, model: streamwrap.ModelWrapper) -> None:
        self.name = name
        self.model = model
        self.memory: list[dict[str, Any]] = [{"role": "system", "content": sys_prompt}]

    async def __call__(self, message: dict[str, Any]) -> dict[str, Any]:
        self.memory.append(message)
        response = await self.model(self.memory)
        await self.speak(response.stream)
        # The stream was consumed above; .text replays it, it does not ask the model again.
        reply = {"role": "assistant", "name": self.name, "content": response.text}
        self.memory.append(reply)
        return {"role": "user", "name": self.name, "content": reply["content"]}

    async def speak(self, stream: AsyncIterator[tuple[bool, str]]) -> None:
        """Print a streaming message as AgentScope does: the new suffix of each text_so_far."""
        print(f"{self.name}: ", end="", flush=True)
        printed = 0
        async for is_last, text_so_far in stream:
            print(text_so_far[printed:], end="", flush=True)
            printed = len(text_so_far)
            if is_last:
                print()


async def main() -> None:
    with Emulator() as emu:
        emu.script(
            Reply(text=["Shall ", "we ", "stream ", "tokens ", "today?"], delay=0.02, usage=(12, 5)),
            Reply(text=["Only ", "the ", "new ", "suffix, ", "please."], delay=0.02, usage=(20, 5)),
            Reply(text=["Never ", "twice."], delay=0.02, usage=(28, 2)),
        )
        model = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": "gpt-4o-mini",
                "stream": True,
                "base_url": emu.openai_base_url,
                "api_key": "sk-emulated",
            }
        )
        alice = DialogAgent("Alice", "You are Alice.", model)
        bob = DialogAgent("Bob", "You are Bob.", model)

        transcript: list[str] = []
        record = streamwrap.CallbackSink(
            on_finish=lambda end: transcript.append(f"{end.usage.output_tokens} tokens: {end.text}"),
            on_error=lambda end: transcript.append(f"failed: {end.error}"),
        )
        # `async with` waits on exit until the sink has had the end of every reply.
        async with streamwrap.default_output(record):
            message = {"role": "user", "content": "Hello, Alice."}
            message = await alice(message)
            message = await bob(message)
            await alice(message)

        print("\ntranscript:")
        for line in transcript:
            print(" ", line)
        assert len(transcript) == 3
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
