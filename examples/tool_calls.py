"""Tool calls survive streaming: fragments are assembled into complete calls."""

import asyncio

import streamwrap
from streamwrap.testing import Emulator, Reply, ToolCallSpec

TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


async def main() -> None:
    with Emulator() as emu:
        emu.script(
            Reply(tool_calls=[ToolCallSpec("get_weather", ['{"ci', 'ty": "Par', 'is"}'])]),
            Reply(text="It is sunny in Paris."),
        )
        model = streamwrap.load_model(
            {
                "model_type": "openai_chat",
                "model_name": "gpt-4o-mini",
                "stream": True,
                "base_url": emu.openai_base_url,
            }
        )
        messages = [{"role": "user", "content": "Weather in Paris?"}]
        response = await model(messages, tools=TOOLS)
        await response.aread()
        assert response.finish_reason == "tool_calls"
        for call in response.tool_calls:
            print("model called", call.name, call.parsed_arguments())
            messages.append({"role": "assistant", "content": None, "tool_calls": [call.to_openai()]})
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
        final = await model(messages, tools=TOOLS)
        print(await final.aread())
        await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
