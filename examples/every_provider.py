"""One call shape, every provider: the same scripted reply through each native wrapper.

Runs offline: the emulator speaks OpenAI's (chat completions and the Responses API),
DashScope's, Gemini's (also on Vertex AI's paths) and Ollama's own wire formats, chosen by the request path. Each wrapper decodes its provider's bytes and fills
the same response fields; drop ``base_url`` and set the provider's API key to talk to the
real service.
"""

import asyncio

import streamwrap
from streamwrap.testing import Emulator, Reply, ToolCallSpec


async def main() -> None:
    with Emulator() as emu:
        providers = [
            ("openai_chat", "gpt-4o-mini", emu.openai_base_url),
            ("openai_responses", "gpt-5", emu.openai_base_url),
            ("zhipuai_chat", "glm-4.7-flash", emu.openai_base_url),
            ("dashscope_chat", "qwen-plus", emu.dashscope_base_url),
            ("gemini_chat", "gemini-2.5-flash", emu.gemini_base_url),
            # (with an API key: Vertex AI's express mode; Google Cloud credentials otherwise)
            ("vertex_gemini_chat", "gemini-2.5-flash", emu.vertex_base_url),
            ("ollama_chat", "qwen3:0.6b", emu.ollama_base_url),
        ]
        weather = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
        for model_type, model_name, base_url in providers:
            emu.script(
                Reply(
                    reasoning="Paris, probably. ",
                    text=["Let me ", "check."],
                    tool_calls=[ToolCallSpec("get_weather", '{"city": "Paris"}')],
                    stream_usage=True,  # as GLM does, unasked (zhipuai_chat does not ask)
                )
            )
            model = streamwrap.load_model(
                {
                    "model_type": model_type,
                    "model_name": model_name,
                    "base_url": base_url,
                    "api_key": "sk-demo",
                    "stream": True,
                }
            )
            response = await model("Weather in Paris?", tools=[weather])
            snapshots = [text async for _, text in response.stream]
            call = response.tool_calls[0]
            print(
                f"{model_type:18} {len(snapshots)} snapshots, text={response.text!r}, "
                f"reasoning={response.reasoning!r}, {call.name}({call.arguments}), "
                f"finish={response.finish_reason}, usage={response.usage.input_tokens}/"
                f"{response.usage.output_tokens} ({response.usage.source})"
            )
            await model.aclose()


if __name__ == "__main__":
    asyncio.run(main())
