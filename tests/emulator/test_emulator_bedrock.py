"""The emulator's Bedrock dialect, read by AWS's own client: boto3's ``converse_stream`` and
``invoke_model_with_response_stream`` (botocore's event-stream parser, its SigV4 signing,
its error parsing) pointed at the emulator with ``endpoint_url`` and dummy credentials.

What boto3 reads must agree with what ``bedrock_chat`` reads from the same script (text,
reasoning and its signature, tool calls, stop reason, usage), the frames must be ones
botocore's parser accepts byte for byte, a corrupted checksum must be one it rejects, and
the error replies must be ones it types as Bedrock's (``ValidationException``,
``ThrottlingException``, ...).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import streamwrap
from streamwrap._transport._eventstream import EventStreamDecoder
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402  (after the skip: botocore comes with boto3)
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
ACCESS_KEY = "AKIDEMULATOR0000001"
SCRIPT = Reply(
    text=["The ", "weather ", "is ", "fine."],
    reasoning=["Let me ", "check."],
    tool_calls=[ToolCallSpec(name="weather", arguments='{"city": "Paris"}', id="tooluse_emu_1")],
    id="emulated-request-1",
    usage={"inputTokens": 12, "outputTokens": 9, "totalTokens": 21, "cacheReadInputTokens": 4},
)
MESSAGES = [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]


@pytest.fixture
def client(emu: Emulator) -> Iterator[Any]:
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=emu.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="emulator-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    yield client
    client.close()


def _converse(client: Any) -> dict[str, Any]:
    """What boto3's converse_stream reads, assembled."""
    out: dict[str, Any] = {"text": "", "reasoning": "", "signature": "", "tools": [], "events": []}
    for event in client.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]:
        (kind,) = event
        out["events"].append(kind)
        body = event[kind]
        if kind == "contentBlockStart":
            tool = body["start"]["toolUse"]
            out["tools"].append([tool["toolUseId"], tool["name"], ""])
        elif kind == "contentBlockDelta":
            delta = body["delta"]
            if "text" in delta:
                out["text"] += delta["text"]
            elif "toolUse" in delta:
                out["tools"][-1][2] += delta["toolUse"]["input"]
            elif "reasoningContent" in delta:
                out["reasoning"] += delta["reasoningContent"].get("text", "")
                out["signature"] += delta["reasoningContent"].get("signature", "")
        elif kind == "messageStop":
            out["stop"] = body["stopReason"]
        elif kind == "metadata":
            out["usage"] = body["usage"]
    return out


def test_boto3_converse_stream_reads_what_bedrock_chat_reads(emu: Emulator, client: Any) -> None:
    emu.script(SCRIPT, SCRIPT)
    boto = _converse(client)
    model = streamwrap.load_model(
        {
            "model_type": "bedrock_chat",
            "model_name": MODEL,
            "base_url": emu.url,
            "api_key": "k",
            "stream": True,
        }
    )
    response = model.call_sync("Weather in Paris?")
    assert boto["events"][0] == "messageStart" and boto["events"][-2:] == ["messageStop", "metadata"]
    assert boto["text"] == response.text == "The weather is fine."
    assert boto["reasoning"] == response.reasoning == "Let me check."
    (call,) = response.tool_calls
    assert boto["tools"] == [[call.id, call.name, call.arguments]]
    assert boto["signature"] == call.extra["thinking_blocks"][0]["signature"] != ""
    assert boto["stop"] == response.finish_reason_raw == "tool_use"
    assert boto["usage"] == {k: v for k, v in response.usage.raw.items() if k != "latencyMs"}
    assert (response.usage.input_tokens, response.usage.cached_tokens) == (16, 4)
    # boto3 signed its request; the emulator recorded it at the path boto3 encodes.
    assert emu.requests[0].path == "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream"
    assert emu.requests[0].path == emu.requests[1].path
    assert emu.requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + ACCESS_KEY)


def test_boto3_invoke_model_with_response_stream_reads_anthropics_events(emu: Emulator, client: Any) -> None:
    emu.script(Reply(text=["Hel", "lo"], usage=(5, 2)))
    body = json.dumps(
        {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    response = client.invoke_model_with_response_stream(modelId=MODEL, body=body)
    events = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    assert events[0]["type"] == "message_start"
    text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    assert text == "Hello"
    assert events[-1]["amazon-bedrock-invocationMetrics"]["inputTokenCount"] == 5
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 2


def _raw(emu: Emulator, reply: Reply) -> bytes:
    emu.script(reply)
    return httpx.post(
        emu.url + "/model/m/converse-stream",
        json={"messages": MESSAGES},
        headers={"authorization": "Bearer k"},
    ).content


def test_botocores_parser_reads_every_frame_as_streamwraps_decoder_does(emu: Emulator) -> None:
    body = _raw(emu, SCRIPT)
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    botocore_messages = [(dict(m.headers), m.payload) for m in buffer]
    ours = EventStreamDecoder("bedrock").feed(body)
    assert botocore_messages == [(m.headers, m.payload) for m in ours]
    assert len(ours) > 10
    # Every payload is padded, as Bedrock's are.
    assert all("p" in json.loads(payload) for _, payload in botocore_messages)


def test_a_corrupted_checksum_is_one_botocore_rejects(emu: Emulator) -> None:
    body = _raw(emu, Reply(text=["a", "b", "c"], fault=Fault.malformed_line_after(1)))
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_a_mid_stream_exception_is_one_boto3_raises(emu: Emulator, client: Any) -> None:
    emu.script(Reply(text=["a", "b"], fault=Fault.error_event_after(1, "slow down", "throttlingException")))
    with pytest.raises(ClientError) as info:
        _converse(client)
    assert info.value.response["Error"]["Code"] == "throttlingException"
    assert info.value.response["Error"]["Message"] == "slow down"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ValidationException"),
        (403, "AccessDeniedException"),
        (429, "ThrottlingException"),
        (503, "ServiceUnavailableException"),
    ],
)
def test_error_replies_are_typed_by_botocore_as_bedrocks(
    emu: Emulator, client: Any, status: int, code: str
) -> None:
    emu.script(Reply(status=status, error={"message": "no good"}))
    with pytest.raises(ClientError) as info:
        client.converse_stream(modelId=MODEL, messages=MESSAGES)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["Error"]["Message"] == "no good"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_a_required_key_accepts_botocores_signature_and_refuses_another(client: Any) -> None:
    with Emulator(api_key=ACCESS_KEY) as emu:
        signed = boto3.client(
            "bedrock-runtime",
            endpoint_url=emu.url,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key="x",
        )
        assert "messageStart" in _converse(signed)["events"]
        other = boto3.client(
            "bedrock-runtime",
            endpoint_url=emu.url,
            region_name="us-east-1",
            aws_access_key_id="AKIDSOMEONEELSE",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as info:
            _converse(other)
        assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
        signed.close()
        other.close()


def test_invoke_frames_hold_base64_anthropic_events(emu: Emulator) -> None:
    emu.script(Reply(text="Hi"))
    body = httpx.post(
        emu.url + "/model/m/invoke-with-response-stream", json={"messages": [], "max_tokens": 5}
    ).content
    messages = EventStreamDecoder("bedrock").feed(body)
    assert {m.headers[":event-type"] for m in messages} == {"chunk"}
    first = json.loads(base64.b64decode(json.loads(messages[0].payload)["bytes"]))
    assert first["type"] == "message_start"
