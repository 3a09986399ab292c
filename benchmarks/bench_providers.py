# ruff: noqa: RUF001  (the multiplication sign in printed tables is meant)
"""Per-chunk CPU of each native-protocol wrapper against that provider's official SDK.

For DashScope, Gemini (and Gemini on Vertex AI), Ollama, Anthropic, OpenAI's Responses API
and Bedrock's ConverseStream (binary AWS event streams; streamwrap authenticates with a
Bedrock API key here, boto3 signs with dummy credentials), streamwrap decodes the provider's
own wire format (not the chat-completions one); Azure OpenAI is the OpenAI format
with Azure's filter results, sent by ``openai.AsyncAzureOpenAI``. This runs, side by side in
one process on the same local stream:

* ``floor``: raw ``httpx`` streaming POST, the least parsing that extracts the text;
* ``sdk``: the provider's official SDK (``dashscope`` ``AioGeneration``, ``google-genai``
  ``client.aio.models.generate_content_stream`` (for Vertex AI: ``Client(vertexai=True)``
  with a fixed-token ``google.oauth2.credentials.Credentials``, as streamwrap gets), ``ollama.AsyncClient.chat``,
  ``openai.AsyncAzureOpenAI``'s ``chat.completions.create(stream=True)``,
  ``anthropic`` ``AsyncAnthropic.messages.create(stream=True)``, its raw event stream;
  ``openai`` ``client.responses.create(stream=True)``; ``boto3``
  ``client("bedrock-runtime").converse_stream`` for Bedrock, whose reads are synchronous:
  it reads on the benchmark's event loop thread, which it blocks, as a sync client does);
* ``sw_stream`` / ``sw_deltas``: the streamwrap wrapper, through ``.stream`` and ``.deltas()``.

The server is streamwrap's emulator (``python -m streamwrap.testing``) in another process;
it answers every dialect's path with the same scripted reply, so every contender of a
provider receives the same bytes. Method and sampling are those of ``bench_stream.py``
(interleaved rounds, process CPU per chunk, median). ``python benchmarks/bench_providers.py
--help`` for the flags.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import statistics
import struct
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    MESSAGES,
    MODEL,
    Contender,
    EmulatorProcess,
    check,
    consuming_contenders,
    run_rounds,
)

loads = orjson.loads


# --------------------------------------------------------------------------------------
# Floors: the least work that gets the text out of each format
# --------------------------------------------------------------------------------------


def _dashscope_text(line: bytes) -> str | None:
    if line[:5] != b"data:":
        return None
    choices = loads(line[5:])["output"]["choices"]
    return choices[0]["message"].get("content") if choices else None


def _gemini_text(line: bytes) -> str | None:
    if line[:6] != b"data: ":
        return None
    candidates = loads(line[6:]).get("candidates")
    if not candidates:
        return None
    parts = candidates[0].get("content", {}).get("parts", ())
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


def _azure_text(line: bytes) -> str | None:
    if line[:6] != b"data: " or line == b"data: [DONE]":
        return None
    choices = loads(line[6:]).get("choices")  # the prompt-filter chunk has none
    return choices[0]["delta"].get("content") if choices else None


def _ollama_text(line: bytes) -> str | None:
    if not line.strip():
        return None
    return loads(line).get("message", {}).get("content")


def _anthropic_text(line: bytes) -> str | None:
    if line[:6] != b"data: ":
        return None
    event = loads(line[6:])
    if event.get("type") != "content_block_delta":
        return None
    return event["delta"].get("text")


def _responses_text(line: bytes) -> str | None:
    if line[:6] != b"data: ":
        return None
    event = loads(line[6:])
    return event["delta"] if event.get("type") == "response.output_text.delta" else None


def _eventstream_texts(buf: bytearray) -> Iterator[str]:
    """The text deltas of the whole ConverseStream messages at the start of ``buf`` (which
    loses them): lengths read, checksums not checked, only contentBlockDelta payloads parsed."""
    while len(buf) >= 12:
        total, headers = struct.unpack_from(">II", buf)
        if len(buf) < total:
            return
        if b"contentBlockDelta" in buf[12 : 12 + headers]:
            text = loads(bytes(buf[12 + headers : total - 4]))["delta"].get("text")
            if text:
                yield text
        del buf[:total]


def bedrock_floor(url: str, body: dict[str, Any], headers: dict[str, str], expected: str) -> Contender:
    import httpx

    client = httpx.AsyncClient(timeout=60.0)

    async def consume() -> None:
        parts: list[str] = []
        buf = bytearray()
        async with client.stream("POST", url, json=body, headers=headers) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                buf += chunk
                parts.extend(_eventstream_texts(buf))
        check("".join(parts), expected, "floor")

    return Contender("floor", "floor: httpx + minimal eventstream framing + orjson", consume, client.aclose)


def floor(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    text_of: Callable[[bytes], str | None],
    expected: str,
) -> Contender:
    import httpx

    client = httpx.AsyncClient(timeout=60.0)

    async def consume() -> None:
        parts: list[str] = []
        tail = b""
        async with client.stream("POST", url, json=body, headers=headers) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                lines = (tail + chunk).split(b"\n")
                tail = lines.pop()
                for line in lines:
                    text = text_of(line.rstrip(b"\r"))
                    if text:
                        parts.append(text)
        check("".join(parts), expected, "floor")

    return Contender("floor", "floor: httpx + minimal parse + orjson", consume, client.aclose)


# --------------------------------------------------------------------------------------
# The official SDKs
# --------------------------------------------------------------------------------------


def dashscope_sdk(url: str, expected: str) -> Contender:
    from dashscope.aigc.generation import AioGeneration

    async def consume() -> None:
        parts: list[str] = []
        responses: Any = await AioGeneration.call(
            model=MODEL,
            messages=MESSAGES,
            api_key="bench",
            stream=True,
            incremental_output=True,
            result_format="message",
            base_address=url + "/api/v1",
        )
        async for rsp in responses:
            choices = rsp.output.choices if rsp.output else None
            if choices:
                content = choices[0].message.content
                if content:
                    parts.append(content)
        check("".join(parts), expected, "dashscope SDK")

    async def aclose() -> None:
        return None

    return Contender("sdk", "dashscope SDK AioGeneration", consume, aclose)


def gemini_sdk(url: str, expected: str) -> Contender:
    from google import genai

    client = genai.Client(api_key="bench", http_options={"base_url": url, "api_version": "v1beta"})
    return _genai_contender(client, expected, "google-genai", "google-genai generate_content_stream")


def _genai_contender(client: Any, expected: str, who: str, label: str) -> Contender:
    """google-genai's ``generate_content_stream``, its answer parts read as a user does."""

    async def consume() -> None:
        parts: list[str] = []
        async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="hi"):
            for candidate in chunk.candidates or ():
                for part in (candidate.content.parts if candidate.content else None) or ():
                    if part.text and not part.thought:
                        parts.append(part.text)
        check("".join(parts), expected, who)

    async def aclose() -> None:
        await client.aio.aclose()

    return Contender("sdk", label, consume, aclose)


# Vertex AI: Google Cloud credentials with a fixed token (a bearer header, no refresh), the
# same object for google-genai and streamwrap.
_VERTEX_PROJECT, _VERTEX_LOCATION = "bench", "us-central1"


def _vertex_credentials() -> Any:
    from google.oauth2.credentials import Credentials

    return Credentials(token="bench")


def vertex_sdk(url: str, expected: str) -> Contender:
    from google import genai

    client = genai.Client(
        vertexai=True,
        project=_VERTEX_PROJECT,
        location=_VERTEX_LOCATION,
        credentials=_vertex_credentials(),
        http_options={"base_url": url},
    )
    return _genai_contender(
        client, expected, "google-genai (Vertex AI)", "google-genai Vertex AI generate_content_stream"
    )


def ollama_sdk(url: str, expected: str) -> Contender:
    import ollama

    client = ollama.AsyncClient(host=url)

    async def consume() -> None:
        parts: list[str] = []
        async for part in await client.chat(model=MODEL, messages=MESSAGES, stream=True):
            if part.message.content:
                parts.append(part.message.content)
        check("".join(parts), expected, "ollama SDK")

    async def aclose() -> None:
        await client._client.aclose()  # the SDK has no public close

    return Contender("sdk", "ollama AsyncClient.chat", consume, aclose)


_AZURE_API_VERSION = "2024-10-21"


def azure_sdk(url: str, expected: str) -> Contender:
    import openai

    client = openai.AsyncAzureOpenAI(
        azure_endpoint=url, api_version=_AZURE_API_VERSION, api_key="bench", max_retries=0
    )

    async def consume() -> None:
        parts: list[str] = []
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        check("".join(parts), expected, "openai AsyncAzureOpenAI")

    return Contender("sdk", "openai AsyncAzureOpenAI", consume, client.close)


def anthropic_sdk(url: str, expected: str) -> Contender:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)

    async def consume() -> None:
        # The SDK's raw event stream (one object per event), not messages.stream(), whose
        # accumulation of a message snapshot per event would cost it more.
        parts: list[str] = []
        stream = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                parts.append(event.delta.text)
        check("".join(parts), expected, "anthropic SDK")

    return Contender("sdk", "anthropic messages.create(stream=True)", consume, client.close)


def anthropic_helper_sdk(url: str, expected: str) -> Contender:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key="bench", base_url=url, max_retries=0)

    async def consume() -> None:
        # messages.stream(), the SDK's accumulating helper (what its docs show first): like
        # streamwrap's .stream it keeps the whole text so far at every event.
        parts: list[str] = []
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
            async for text in stream.text_stream:
                parts.append(text)
        check("".join(parts), expected, "anthropic SDK messages.stream()")

    return Contender("sdk", "anthropic messages.stream()", consume, client.close)


def bedrock_sdk(url: str, expected: str) -> Contender:
    import boto3

    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDBENCH",
        aws_secret_access_key="bench",
    )
    messages = [{"role": "user", "content": [{"text": MESSAGES[0]["content"]}]}]

    async def consume() -> None:
        # boto3's own event objects (one dict per event), as a boto3 user reads them.
        parts: list[str] = []
        for event in client.converse_stream(modelId=MODEL, messages=messages)["stream"]:
            delta = event.get("contentBlockDelta")
            if delta is not None and "text" in delta["delta"]:
                parts.append(delta["delta"]["text"])
        check("".join(parts), expected, "boto3")

    async def aclose() -> None:
        client.close()

    return Contender("sdk", "boto3 converse_stream", consume, aclose)


def bedrock_async_sdk(url: str, expected: str) -> Contender:
    # aiobotocore: botocore on an event loop, the async SDK an asyncio application uses.
    from aiobotocore.session import get_session

    messages = [{"role": "user", "content": [{"text": MESSAGES[0]["content"]}]}]
    state: dict[str, Any] = {}

    async def consume() -> None:
        if "client" not in state:
            state["cm"] = get_session().create_client(
                "bedrock-runtime",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="AKIDBENCH",
                aws_secret_access_key="bench",
            )
            state["client"] = await state["cm"].__aenter__()
        parts: list[str] = []
        response = await state["client"].converse_stream(modelId=MODEL, messages=messages)
        async for event in response["stream"]:
            delta = event.get("contentBlockDelta")
            if delta is not None and "text" in delta["delta"]:
                parts.append(delta["delta"]["text"])
        check("".join(parts), expected, "aiobotocore")

    async def aclose() -> None:
        if "cm" in state:
            await state["cm"].__aexit__(None, None, None)

    return Contender("sdk", "aiobotocore converse_stream", consume, aclose)


def openai_responses_sdk(url: str, expected: str) -> Contender:
    import openai

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0)

    async def consume() -> None:
        parts: list[str] = []
        async for event in await client.responses.create(model=MODEL, input=MESSAGES, stream=True):  # type: ignore[arg-type]
            if event.type == "response.output_text.delta":
                parts.append(event.delta)
        check("".join(parts), expected, "openai responses")

    return Contender("sdk", "openai responses.create(stream=True)", consume, client.close)


# --------------------------------------------------------------------------------------
# streamwrap
# --------------------------------------------------------------------------------------


def streamwrap_contenders(
    model_type: str, base_url: str, expected: str, extra: dict[str, Any] | None = None
) -> list[Contender]:
    config = {
        "model_type": model_type,
        "model_name": MODEL,
        "stream": True,
        "base_url": base_url,
        "api_key": "bench",
        "max_retries": 0,
        **(extra or {}),
    }
    # aread() is measured by bench_stream.py; here the two ways of following a stream.
    return [
        c
        for c in consuming_contenders(lambda: dict(config), expected, f"streamwrap {model_type}")
        if c.key != "sw_aread"
    ]


@dataclass(frozen=True)
class Provider:
    """One provider path: where its requests go, how the floor reads it, its SDK."""

    model_type: str
    sdk_dist: str  # the distribution whose version is reported
    floor_path: str
    floor_body: Callable[[], dict[str, Any]]
    floor_headers: dict[str, str]
    text_of: Callable[[bytes], str | None]
    sdk: Callable[[str, str], Contender]
    base_url: Callable[[str], str]
    #: a floor of its own, for a format that is not lines (Bedrock's binary frames)
    make_floor: Callable[[str, dict[str, Any], dict[str, str], str], Contender] | None = None
    #: config keys of the streamwrap model besides the common ones (they replace "api_key")
    sw_config: Callable[[], dict[str, Any]] | None = None


PROVIDERS = {
    "azure": Provider(
        "azure_openai_chat",
        "openai",
        f"/openai/deployments/{MODEL}/chat/completions?api-version={_AZURE_API_VERSION}",
        lambda: {"model": MODEL, "messages": MESSAGES, "stream": True},
        {"api-key": "bench"},
        _azure_text,
        azure_sdk,
        lambda url: url,
    ),
    "dashscope": Provider(
        "dashscope_chat",
        "dashscope",
        "/api/v1/services/aigc/text-generation/generation",
        lambda: {
            "model": MODEL,
            "input": {"messages": MESSAGES},
            "parameters": {"result_format": "message", "incremental_output": True},
        },
        {"X-DashScope-SSE": "enable", "Authorization": "Bearer bench"},
        _dashscope_text,
        dashscope_sdk,
        lambda url: url + "/api/v1",
    ),
    "gemini": Provider(
        "gemini_chat",
        "google-genai",
        f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
        lambda: {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        {"x-goog-api-key": "bench"},
        _gemini_text,
        gemini_sdk,
        lambda url: url,
    ),
    "vertex": Provider(
        "vertex_gemini_chat",
        "google-genai",
        f"/v1/projects/{_VERTEX_PROJECT}/locations/{_VERTEX_LOCATION}/publishers/google/models/{MODEL}"
        ":streamGenerateContent?alt=sse",
        lambda: {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        {"authorization": "Bearer bench"},
        _gemini_text,
        vertex_sdk,
        lambda url: url,
        sw_config=lambda: {
            "api_key": None,
            "project": _VERTEX_PROJECT,
            "location": _VERTEX_LOCATION,
            "credentials": _vertex_credentials(),
        },
    ),
    "ollama": Provider(
        "ollama_chat",
        "ollama",
        "/api/chat",
        lambda: {"model": MODEL, "messages": MESSAGES, "stream": True},
        {},
        _ollama_text,
        ollama_sdk,
        lambda url: url,
    ),
    "anthropic": Provider(
        "anthropic_chat",
        "anthropic",
        "/v1/messages",
        lambda: {"model": MODEL, "max_tokens": 64, "messages": MESSAGES, "stream": True},
        {"x-api-key": "bench", "anthropic-version": "2023-06-01"},
        _anthropic_text,
        anthropic_sdk,
        lambda url: url,
    ),
    # The same, against the SDK's accumulating helper.
    "anthropic_helper": Provider(
        "anthropic_chat",
        "anthropic",
        "/v1/messages",
        lambda: {"model": MODEL, "max_tokens": 64, "messages": MESSAGES, "stream": True},
        {"x-api-key": "bench", "anthropic-version": "2023-06-01"},
        _anthropic_text,
        anthropic_helper_sdk,
        lambda url: url,
    ),
    "openai_responses": Provider(
        "openai_responses",
        "openai",
        "/v1/responses",
        lambda: {"model": MODEL, "input": MESSAGES, "stream": True},
        {"Authorization": "Bearer bench"},
        _responses_text,
        openai_responses_sdk,
        lambda url: url + "/v1",
    ),
    "bedrock": Provider(
        "bedrock_chat",
        "boto3",
        f"/model/{MODEL}/converse-stream",
        lambda: {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        {"authorization": "Bearer bench"},
        lambda line: None,  # (binary frames: see make_floor)
        bedrock_sdk,
        lambda url: url,
        make_floor=bedrock_floor,
    ),
    # The same, against the async SDK (needs aiobotocore, which pins its own botocore: run
    # it in an environment of its own, see benchmarks/README.md).
    "bedrock_async": Provider(
        "bedrock_chat",
        "aiobotocore",
        f"/model/{MODEL}/converse-stream",
        lambda: {"messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        {"authorization": "Bearer bench"},
        lambda line: None,  # (binary frames: see make_floor)
        bedrock_async_sdk,
        lambda url: url,
        make_floor=bedrock_floor,
    ),
}


async def bench_provider(name: str, chunks: int, rounds: int, chunk_text: str) -> dict[str, Any]:
    spec = PROVIDERS[name]
    expected = chunk_text * chunks
    with EmulatorProcess(chunks, chunk_text) as emulator:
        floor_url = emulator.url + spec.floor_path
        contenders = [
            spec.make_floor(floor_url, spec.floor_body(), spec.floor_headers, expected)
            if spec.make_floor is not None
            else floor(floor_url, spec.floor_body(), spec.floor_headers, spec.text_of, expected),
            spec.sdk(emulator.url, expected),
            *streamwrap_contenders(
                spec.model_type,
                spec.base_url(emulator.url),
                expected,
                spec.sw_config() if spec.sw_config else None,
            ),
        ]
        try:
            results = await run_rounds(contenders, 1, rounds, emulator, name)
        finally:
            for c in contenders:
                await c.aclose()
    rows = {
        res.key: {
            "label": res.label,
            "cpu_us_per_chunk": statistics.median(s.cpu_s / chunks * 1e6 for s in res.samples),
            "chunks_per_s": chunks / res.median("wall_s"),
        }
        for res in results
    }
    return {"provider": name, "sdk_version": importlib.metadata.version(spec.sdk_dist), "rows": rows}


def render(results: list[dict[str, Any]], chunks: int) -> str:
    lines = [
        f"Per-chunk CPU of one stream of {chunks} chunks (whole client process, median of rounds):",
        "",
        "| provider | streamwrap .stream | .deltas() | official SDK | floor | .stream vs SDK | .stream vs floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows = r["rows"]
        sw, dl, sdk, fl = (rows[k]["cpu_us_per_chunk"] for k in ("sw_stream", "sw_deltas", "sdk", "floor"))
        lines.append(
            f"| {r['provider']} ({rows['sdk']['label']} {r['sdk_version']}) | {sw:.1f} µs | {dl:.1f} µs | "
            f"{sdk:.1f} µs | {fl:.1f} µs | {sw / sdk:.2f}× | {sw / fl:.2f}× |"
        )
    return "\n".join(lines)


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    installed = [
        name for name, spec in PROVIDERS.items() if importlib.util.find_spec(spec.sdk_dist) is not None
    ]
    parser.add_argument(
        "--providers",
        default=",".join(installed),
        help="comma-separated (default: every one whose SDK is installed: %(default)s)",
    )
    parser.add_argument("--chunks", type=int, default=20_000, help="chunks per stream (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default: %(default)s)")
    parser.add_argument("--chunk-text", default="tok ", help="text of each chunk (default: %(default)r)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    results = []
    for name in args.providers.split(","):
        results.append(asyncio.run(bench_provider(name.strip(), args.chunks, args.rounds, args.chunk_text)))
    print(render(results, args.chunks))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
