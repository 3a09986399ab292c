"""What calls cost: ``response.cost`` for one call, ``streamwrap.usage_summary()`` for all the
calls of a block (concurrent streams included, a cancelled one too), printed as a table.

Prices come from genai-prices (``pip install "streamwrap[cost]"``), pydantic's maintained
table, with its bundled data: nothing is fetched. Runs offline: the provider emulator from
``streamwrap.testing`` plays OpenAI and Anthropic on 127.0.0.1. It stands at a local URL,
which no price table knows, so each config names the provider whose prices apply
(``price_provider``); pointed at the real APIs, the models need no such key.
"""

import asyncio

import streamwrap
from streamwrap.testing import Emulator, Fault, Reply


async def main() -> None:
    with Emulator() as emu:
        gpt = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": "gpt-4o-mini",
                "stream": True,
                "base_url": emu.openai_base_url,
                "api_key": "sk-emulated",
                "price_provider": "openai",
            }
        )
        claude = streamwrap.load_model(
            {
                "model_type": "anthropic_chat",
                "model_name": "claude-sonnet-4-5",
                "stream": True,
                "base_url": emu.anthropic_base_url,
                "api_key": "sk-emulated",
                "price_provider": "anthropic",
            }
        )
        gpt.prepare()  # (also loads the price table, ahead of the first cost)
        emu.script(
            Reply(
                text="Streams end; costs add up.",
                model="gpt-4o-mini-2024-07-18",
                usage={
                    "prompt_tokens": 1200,
                    "completion_tokens": 300,
                    "prompt_tokens_details": {"cached_tokens": 1024},
                },
            )
        )

        with streamwrap.usage_summary() as summary:
            # One call, and what it cost.
            response = await gpt("Say something about costs")
            print(await response.aread())
            print("cost:", response.cost)  # priced once, when asked

            # Three concurrent calls, counted as each one ends.
            emu.default = Reply(text="one of three", usage=(400, 80), model="gpt-4o-mini")
            replies = await asyncio.gather(*(gpt(f"task {i}") for i in range(3)))
            await asyncio.gather(*(reply.aread() for reply in replies))

            # A stream cancelled after its first chunk: Anthropic had reported the input.
            emu.script(
                Reply(
                    text=["A ", "long ", "story..."],
                    usage={"input_tokens": 2000, "output_tokens": 900},
                    model="claude-sonnet-4-5",
                    fault=Fault.stall_after(1, 30),
                )
            )
            story = await claude("Tell me a long story")
            async for _ in story.stream:
                break  # (leaving the loop cancels it)
            await story.aclose()
            print("cancelled:", story.cost)

        print()
        print(summary)
        print("total:", summary.total.cost, summary.total.currency)
        await gpt.aclose()
        await claude.aclose()


if __name__ == "__main__":
    asyncio.run(main())
