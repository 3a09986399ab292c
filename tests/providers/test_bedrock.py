"""``bedrock_chat``: Amazon Bedrock's ConverseStream (and InvokeModelWithResponseStream), over
real HTTP to the emulator, authenticated as Bedrock is: SigV4 signatures made by botocore
with the credentials of its standard chain (environment, profiles, a credential process
that expires), or a Bedrock API key as a bearer token.

Real Bedrock recordings (../shared/recordings/bedrock, routed by
tests/support/recordings.py) are replayed byte for byte, one event stream message per
write, 7 and 1 bytes at a time, and must parse to their ``expected`` block; the recorded
400 error (its type only in ``x-amzn-ErrorType``) raises the typed error. The request is
checked against Converse's shape, reasoning signatures travel back with tool calls, and
the AWS secrets never show in an error.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

import streamwrap
from streamwrap._delta import Finish, UsageReport
from streamwrap._providers.bedrock._invoke import InvokeStreamMapper, build_invoke_body
from streamwrap._providers.bedrock._request import DEFAULT_THINKING_MAX_TOKENS, build_converse_body
from streamwrap._wrapper import ChatRequest
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec
from streamwrap.testing._eventstream import eventstream_message
from tests.reliability.test_secrets import SECRET, assert_no_key_in_error
from tests.support import recordings as _recordings

pytestmark = pytest.mark.anyio

API_KEY = "bedrock-api-key-test-0123456789"
MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
ACCESS_KEY = "AKIDTESTEXAMPLE0001"
SPLITS = ["event", 7, 1]

CONVERSE = _recordings.params(
    "recording", _recordings.select(wire=_recordings.BEDROCK), what="Bedrock ConverseStream"
)
INVOKE = _recordings.params(
    "recording", _recordings.select(wire=_recordings.BEDROCK_INVOKE), what="Bedrock invoke"
)


@pytest.fixture(autouse=True)
def _no_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS setting of the machine leaks in: empty config and credentials files."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "aws-config").write_text("")
    (tmp_path / "aws-credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    # No instance metadata service is asked (it is not there, and asking takes seconds).
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def make_model(emu: Emulator, **overrides: Any) -> Any:
    config: dict[str, Any] = {
        "model_type": "bedrock_chat",
        "model_name": MODEL,
        "api_key": API_KEY,
        "base_url": emu.bedrock_endpoint_url,
        "max_retries": 0,
        "stream": True,
        **overrides,
    }
    return streamwrap.load_model({k: v for k, v in config.items() if v is not None})


def _aws_credentials(
    monkeypatch: pytest.MonkeyPatch, secret: str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-" + secret)


# -- the recordings -------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("recording", CONVERSE)
async def test_converse_recording_replays_to_expected(
    emu: Emulator, recording: _recordings.Recording, split: str | int
) -> None:
    expected = recording.expected
    model_id = recording.meta["request"]["path"].split("/")[2]  # as recorded, URL-encoded
    emu.replay(recording.body, content_type=recording.content_type(), split=split)
    model = make_model(emu, model_name=model_id.replace("%3A", ":"))
    response = await model("hi")
    items = [item async for item in response.stream]
    assert items[-1] == (True, expected["text"])
    assert [i for i, item in enumerate(items) if item.is_last] == [len(items) - 1]
    assert response.reasoning == expected["reasoning"]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    assert response.finish_reason_raw == expected["finish_reason"]
    assert response.finish_reason == {"end_turn": "stop", "tool_use": "tool_calls"}[expected["finish_reason"]]
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.source) == (
        expected["usage"]["inputTokens"],
        expected["usage"]["outputTokens"],
        expected["usage"]["totalTokens"],
        "provider",
    )
    assert usage.raw == {**expected["usage"], **expected["metrics"]}
    # The request went to the recorded path: the model id URL-encoded as boto3 encodes it.
    assert emu.requests[-1].path == recording.meta["request"]["path"]
    if expected["reasoning"]:
        # Reasoning without a tool call is not kept to send back; its signature arrived.
        (block,) = [b for b in expected["content_blocks"] if b["type"] == "reasoningContent"]
        assert block["signature_len"] > 0


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("recording", INVOKE)
async def test_invoke_recording_replays_to_expected(
    emu: Emulator, recording: _recordings.Recording, split: str | int
) -> None:
    expected = recording.expected
    emu.replay(recording.body, content_type=recording.content_type(), split=split)
    model = make_model(emu, bedrock_api="invoke")
    response = await model("hi")
    assert await response.aread() == expected["text"]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    assert response.tool_calls[0].parsed_arguments() == expected["content_blocks"][0]["input"]
    assert response.finish_reason_raw == expected["finish_reason"]
    assert response.model == expected["model"]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        expected["usage"]["input_tokens"],
        expected["usage"]["output_tokens"],
    )
    assert emu.requests[-1].path.endswith("/invoke-with-response-stream")


async def test_recorded_validation_error_names_its_message(emu: Emulator, recordings: Path) -> None:
    recording = _recordings.named("bedrock/error_400_validation_invoke_stream")
    body = json.loads(recording.body)
    # The recorded body, with the recorded x-amzn-ErrorType header.
    emu.script(
        Reply(
            status=400,
            error={"message": body["message"]},
            headers={"x-amzn-ErrorType": recording.meta["response_x_amzn_errortype"][0]},
        )
    )
    model = make_model(emu, bedrock_api="invoke")
    with pytest.raises(streamwrap.ProviderHTTPError) as info:
        await model("hi")
    err = info.value
    assert type(err) is streamwrap.ProviderHTTPError
    assert err.status_code == 400
    assert err.body == recording.expected["error_body"]
    assert str(err) == f"bedrock: HTTP 400: ValidationException: {body['message']}"


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (400, "ValidationException", streamwrap.ProviderHTTPError),
        (429, "ThrottlingException", streamwrap.RateLimitError),
        (403, "AccessDeniedException", streamwrap.AuthenticationError),
        (403, "UnrecognizedClientException", streamwrap.AuthenticationError),
        (403, "ExpiredTokenException", streamwrap.AuthenticationError),
        (404, "ResourceNotFoundException", streamwrap.NotFoundError),
        (503, "ServiceUnavailableException", streamwrap.ServerError),
        (500, "InternalServerException", streamwrap.ServerError),
        # The type decides where the status would not: a throttle relayed as a 400.
        (400, "ThrottlingException", streamwrap.RateLimitError),
    ],
)
async def test_errors_before_the_stream_are_typed_by_x_amzn_errortype(
    emu: Emulator, status: int, kind: str, error: type[Exception]
) -> None:
    emu.script(Reply(status=status, error={"message": "it went wrong", "type": kind}))
    with pytest.raises(streamwrap.ProviderHTTPError) as info:
        await make_model(emu)("hi")
    assert type(info.value) is error
    assert info.value.status_code == status
    assert str(info.value) == f"bedrock: HTTP {status}: {kind}: it went wrong"


async def test_throttling_before_the_stream_is_retried_like_a_429(emu: Emulator) -> None:
    emu.script(Reply(status=429, headers={"Retry-After": "0"}), Reply(text="fine"))
    response = await make_model(emu, max_retries=1)("hi")
    assert await response.aread() == "fine"
    assert [(a["status"], a["error"]) for a in response.attempts] == [(429, "RateLimitError"), (200, None)]


async def test_a_throttling_exception_before_any_content_is_retried(emu: Emulator) -> None:
    emu.script(
        Reply(text="never", fault=Fault.error_event_after(0, "Too many tokens", "throttlingException")),
        Reply(text="second time lucky"),
    )
    response = await make_model(emu, max_retries=1)("hi")
    assert await response.aread() == "second time lucky"
    assert [(a["status"], a["error"]) for a in response.attempts] == [(429, "RateLimitError"), (200, None)]
    # Without retries, it is the call that raises: the request never ran.
    emu.script(
        Reply(text="never", fault=Fault.error_event_after(0, "Too many tokens", "throttlingException"))
    )
    with pytest.raises(streamwrap.RateLimitError, match="throttlingException: Too many tokens"):
        await make_model(emu)("hi")


@pytest.mark.parametrize(
    "kind",
    [
        "throttlingException",
        "modelStreamErrorException",
        "validationException",
        "serviceUnavailableException",
        "internalServerException",
    ],
)
async def test_exceptions_mid_stream_keep_the_partial_text(emu: Emulator, kind: str) -> None:
    emu.script(Reply(text=["Hel", "lo ", "there"], fault=Fault.error_event_after(2, "model broke", kind)))
    response = await make_model(emu)("hi")
    with pytest.raises(streamwrap.ProviderStreamError) as info:
        await response.aread()
    assert (info.value.code, info.value.message, info.value.partial_text) == (kind, "model broke", "Hello ")


async def test_a_corrupt_checksum_or_a_cut_frame_is_a_protocol_error(emu: Emulator) -> None:
    for fault, words in (
        (Fault.malformed_line_after(1), "checksum mismatch"),
        (Fault.truncated_json_after(1), "ended inside a message"),
    ):
        emu.script(Reply(text=["Hel", "lo"], fault=fault))
        response = await make_model(emu)("hi")
        with pytest.raises(streamwrap.StreamProtocolError, match=words) as info:
            await response.aread()
        assert info.value.partial_text == "Hel"


# -- the request ----------------------------------------------------------------------------


def _body(messages: list[dict[str, Any]], tools: Any = None, **params: Any) -> dict[str, Any]:
    return build_converse_body(ChatRequest(MODEL, messages, True, tools, params))


def test_request_maps_system_tools_inference_config_and_tool_results() -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "weather", "description": "The weather", "parameters": {"type": "object"}},
        }
    ]
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    body = _body(
        [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "user", "content": "Thanks"},
        ],
        tools,
        max_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stop="END",
        tool_choice="required",
        top_k=5,
        guardrailConfig={"guardrailIdentifier": "g", "guardrailVersion": "1"},
    )
    assert body == {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Look"},
                    {"image": {"format": "png", "source": {"bytes": base64.b64encode(b"\x89PNG").decode()}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                    {"text": "Thanks"},
                ],
            },
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 5},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "weather",
                        "description": "The weather",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
        "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
    }


def test_thinking_goes_in_additional_model_request_fields_with_room_in_max_tokens() -> None:
    body = _body([{"role": "user", "content": "hi"}], thinking=1024)
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["inferenceConfig"] == {"maxTokens": DEFAULT_THINKING_MAX_TOKENS + 1024}
    # The recorded request's form, passed whole.
    body = _body(
        [{"role": "user", "content": "hi"}],
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
        max_tokens=3000,
    )
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert body["inferenceConfig"] == {"maxTokens": 3000}


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}],
        [{"type": "audio", "audio": "x"}],
        [5],
    ],
)
def test_content_bedrock_cannot_take_is_an_input_error(content: Any) -> None:
    with pytest.raises(streamwrap.InputError, match=r"messages\[0\]"):
        _body([{"role": "user", "content": content}])


async def test_reasoning_signatures_go_back_with_the_tool_calls(emu: Emulator) -> None:
    emu.script(
        Reply(
            reasoning="Need the weather.",
            tool_calls=[ToolCallSpec(name="weather", arguments='{"city": "Paris"}')],
        ),
        Reply(text="It is sunny."),
    )
    model = make_model(emu)
    first = await model("Weather in Paris?")
    await first.aread()
    (call,) = first.tool_calls
    (thinking,) = call.extra["thinking_blocks"]
    assert thinking["thinking"] == "Need the weather." and thinking["signature"]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await model(messages)
    assert await second.aread() == "It is sunny."
    sent = emu.requests[-1].json["messages"][1]
    assert sent == {
        "role": "assistant",
        "content": [
            {
                "reasoningContent": {
                    "reasoningText": {"text": "Need the weather.", "signature": thinking["signature"]}
                }
            },
            {"toolUse": {"toolUseId": call.id, "name": "weather", "input": {"city": "Paris"}}},
        ],
    }


async def test_non_streaming_calls_read_the_converse_body(emu: Emulator) -> None:
    emu.script(
        Reply(
            text="Whole.",
            reasoning="hm",
            usage={"inputTokens": 3, "outputTokens": 2, "totalTokens": 5, "cacheReadInputTokens": 10},
        )
    )
    response = await make_model(emu, stream=False)("hi")
    assert (response.text, response.reasoning, response.finish_reason) == ("Whole.", "hm", "stop")
    assert (response.usage.input_tokens, response.usage.cached_tokens, response.usage.total_tokens) == (
        13,
        10,
        5,
    )
    assert emu.requests[-1].path.endswith("/converse")


def test_model_ids_and_arns_are_one_path_segment() -> None:
    from urllib.parse import quote

    arn = (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"
    )
    assert quote(arn, safe="") == arn.replace(":", "%3A").replace("/", "%2F")


async def test_an_arn_model_id_reaches_its_path(emu: Emulator) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-micro-v1:0"
    response = await make_model(emu, model_name=arn)("hi")
    await response.aread()
    assert (
        emu.requests[-1].path == "/model/" + arn.replace(":", "%3A").replace("/", "%2F") + "/converse-stream"
    )


# -- InvokeModelWithResponseStream ------------------------------------------------------------


def test_invoke_body_is_anthropics_without_model_and_stream() -> None:
    body = build_invoke_body(
        ChatRequest(
            MODEL,
            [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
            True,
            None,
            {"thinking": 1000},
        )
    )
    assert body == {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "system": [{"type": "text", "text": "S"}],
        "thinking": {"type": "enabled", "budget_tokens": 1000},
        "max_tokens": 4096 + 1000,
        "anthropic_version": "bedrock-2023-05-31",
    }


async def test_invoke_api_streams_anthropics_events(emu: Emulator) -> None:
    emu.script(
        Reply(text=["Hel", "lo"], reasoning="hm", tool_calls=[ToolCallSpec(name="f", arguments='{"a": 1}')])
    )
    response = await make_model(emu, bedrock_api="invoke")("hi")
    assert await response.aread() == "Hello"
    assert response.reasoning == "hm"
    assert response.tool_calls[0].extra["thinking_blocks"][0]["type"] == "thinking"
    assert response.finish_reason == "tool_calls"
    assert emu.requests[-1].json["anthropic_version"] == "bedrock-2023-05-31"


def _chunk(event: dict[str, Any]) -> bytes:
    payload = orjson.dumps({"bytes": base64.b64encode(orjson.dumps(event)).decode()})
    return eventstream_message(
        {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload
    )


def _invoke_usage(*events: dict[str, Any]) -> Any:
    mapper = InvokeStreamMapper("bedrock")
    deltas = mapper.feed(b"".join(_chunk(e) for e in events)) + mapper.end()
    assert Finish("end_turn") in deltas
    return [d.usage for d in deltas if type(d) is UsageReport][-1]


def test_invoke_usage_anthropics_counts_win_over_the_invocation_metrics() -> None:
    metrics = {"inputTokenCount": 999, "outputTokenCount": 999, "invocationLatency": 1, "firstByteLatency": 1}
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "model": "c",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1},
        },
    }
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}
    stop = {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}
    usage = _invoke_usage(start, delta, stop)
    assert (usage.input_tokens, usage.cached_tokens, usage.output_tokens) == (15, 5, 7)
    # Without Anthropic's counts, the invocation metrics are what there is.
    usage = _invoke_usage(
        {"type": "message_start", "message": {"id": "m"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
        stop,
    )
    assert (usage.input_tokens, usage.output_tokens, usage.source) == (999, 999, "provider")


# -- authentication -----------------------------------------------------------------------------


async def test_sigv4_with_the_environments_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_credentials(monkeypatch)
    with Emulator(api_key=ACCESS_KEY) as emu:
        emu.script(Reply(text="signed"))
        response = await make_model(emu, api_key=None, region="eu-west-3")("hi")
        assert await response.aread() == "signed"
        headers = emu.requests[-1].headers
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/eu-west-3/bedrock/aws4_request, SignedHeaders=" in headers["authorization"]
    assert headers["x-amz-security-token"].startswith("session-token-")
    assert "x-amz-date" in headers


async def test_the_signature_is_botocores_over_the_bytes_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-signed by botocore from what the server received, at the same instant, the
    request carries the same signature: the body and URL signed are the ones sent."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    _aws_credentials(monkeypatch)
    with Emulator() as emu:
        response = await make_model(emu, api_key=None, region="us-east-1")("hi")
        await response.aread()
        request = emu.requests[-1]
        url = emu.url + request.path
    aws = AWSRequest(
        method="POST",
        url=url,
        data=request.body,
        headers={"content-type": request.headers["content-type"], "accept": request.headers["accept"]},
    )
    aws.context["timestamp"] = request.headers["x-amz-date"]
    credentials = Credentials(
        ACCESS_KEY,
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "session-token-wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    SigV4Auth(credentials, "bedrock", "us-east-1").add_auth(aws)
    assert aws.headers["Authorization"] == request.headers["authorization"]


async def test_a_profile_gives_credentials_and_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "aws-config").write_text("[profile work]\nregion = ap-south-1\n")
    (tmp_path / "aws-credentials").write_text(
        f"[work]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = s3cr3t\n"
    )
    with Emulator() as emu:
        model = make_model(emu, api_key=None, profile="work")
        response = await model("hi")
        await response.aread()
        authorization = emu.requests[-1].headers["authorization"]
    assert f"Credential={ACCESS_KEY}/" in authorization and "/ap-south-1/bedrock/" in authorization
    assert model.region == "ap-south-1"


async def test_expiring_credentials_are_refreshed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A credential process (botocore runs it, in a worker thread here) whose credentials
    # expire within botocore's refresh window: every request gets fresh ones.
    counter = tmp_path / "count"
    script = tmp_path / "creds.py"
    script.write_text(
        "import datetime, json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)\n"
        "print(json.dumps({'Version': 1, 'AccessKeyId': f'AKIDREFRESH{n}', 'SecretAccessKey': 's',"
        " 'SessionToken': 't', 'Expiration': expires.isoformat()}))\n"
    )
    (tmp_path / "aws-config").write_text(
        f"[profile temp]\nregion = us-east-1\ncredential_process = {sys.executable} {script}\n"
    )
    with Emulator() as emu:
        model = make_model(emu, api_key=None, profile="temp")
        for _ in range(2):
            response = await model("hi")
            await response.aread()
        ids = [r.headers["authorization"].split("Credential=")[1].split("/")[0] for r in emu.requests]
    assert ids[0] != ids[1] and all(i.startswith("AKIDREFRESH") for i in ids)


async def test_bearer_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", API_KEY)
    with Emulator(api_key=API_KEY) as emu:
        response = await make_model(emu, api_key=None)("hi")
        await response.aread()
        assert emu.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"
        # A wrong key is Bedrock's 403.
        with pytest.raises(streamwrap.AuthenticationError, match="UnrecognizedClientException"):
            await make_model(emu, api_key="wrong")("hi")


async def test_no_credentials_at_all_is_a_config_error(emu: Emulator) -> None:
    with pytest.raises(streamwrap.ConfigError, match="no AWS credentials"):
        await make_model(emu, api_key=None, region="us-east-1")("hi")


async def test_no_region_without_an_endpoint_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    model = streamwrap.load_model({"model_type": "bedrock_chat", "model_name": MODEL, "api_key": API_KEY})
    with pytest.raises(streamwrap.ConfigError, match="no AWS region"):
        await model("hi")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    model = streamwrap.load_model({"model_type": "bedrock_chat", "model_name": MODEL, "api_key": API_KEY})
    assert model.region == "us-west-2"
    assert await model._url(True) == (
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream"
    )


def test_bad_config_keys_are_named() -> None:
    with pytest.raises(streamwrap.ConfigError, match="'bedrock_api' must be 'converse' or 'invoke'"):
        streamwrap.load_model(
            {"model_type": "bedrock_chat", "model_name": MODEL, "api_key": "k", "bedrock_api": "x"}
        )
    with pytest.raises(streamwrap.ConfigError, match="'region' must be"):
        streamwrap.load_model(
            {"model_type": "bedrock_chat", "model_name": MODEL, "api_key": "k", "region": 5}
        )


# -- the AWS secrets never show -----------------------------------------------------------------


_ECHO = "The security token session-token-{0} or key {0} is invalid"
ECHOES = {
    "403-echo": Reply(
        status=403, error={"message": _ECHO.format(SECRET), "type": "UnrecognizedClientException"}
    ),
    "exception-echo": Reply(
        text=["a", "b"], fault=Fault.error_event_after(1, _ECHO.format(SECRET), "validationException")
    ),
    "whole-403-echo": Reply(
        status=403, error={"message": _ECHO.format(SECRET), "type": "AccessDeniedException"}
    ),
}


def _signing_model(root: str, **overrides: Any) -> Any:
    # (Built here: the config is not a local of the test's frame.)
    config = {"model_type": "bedrock_chat", "model_name": MODEL, "base_url": root, "region": "us-east-1"}
    return streamwrap.load_model({**config, "max_retries": 0, "stream": True, "timeout": 10, **overrides})


@pytest.mark.parametrize("failure", list(ECHOES))
async def test_aws_secret_key_and_session_token_never_show(
    monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    # The secret access key and the session token both hold SECRET, and the server echoes both.
    _aws_credentials(monkeypatch, secret=SECRET)
    with Emulator() as emu:
        emu.script(ECHOES[failure])
        model = _signing_model(emu.url, stream=not failure.startswith("whole"))
        with pytest.raises(streamwrap.StreamwrapError) as info:
            response = await model("hi")
            await response.aread()
        assert "**********" in str(info.value)  # scrubbed, not dropped
        assert_no_key_in_error(info.value)
        assert SECRET not in repr(model) and SECRET not in repr(vars(model))
        # They did travel, to the server only: the session token, and a signature.
        assert emu.requests[-1].headers["x-amz-security-token"] == "session-token-" + SECRET


async def test_aws_secrets_never_show_when_the_server_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_credentials(monkeypatch, secret=SECRET)
    with Emulator() as gone:
        root = gone.url
    model = _signing_model(root)
    with pytest.raises(streamwrap.ProviderConnectionError) as info:
        await model("hi")
    assert_no_key_in_error(info.value)
    assert SECRET not in repr(model) and SECRET not in repr(vars(model))


async def test_a_timeout_while_waiting_for_the_first_message_closes_the_connection(own_emu: Emulator) -> None:
    # Nothing at all arrives (not even messageStart): the first-token timeout fires while
    # bedrock_chat reads the first message (to retry an early throttle) inside the call,
    # before the wrapper holds the response; it is raised by the call, and the response's
    # connection is closed at once, not left open until the reply would have ended.
    own_emu.script(
        Reply(text="late", first_delay=5.0, fault=Fault.error_event_after(0, "x", "throttlingException"))
    )
    model = make_model(own_emu, first_token_timeout=0.3)
    with pytest.raises(streamwrap.StreamTimeoutError) as info:
        response = await model("hi")
        await response.aread()
    assert info.value.code == "first_token_timeout"
    try:
        # (Before the model's client is closed, which would close every connection; and
        # well before the scripted reply would end by itself.)
        assert own_emu.wait_idle(2.0)
        assert own_emu.open_connections == 0
    finally:
        model.close()


async def test_signing_without_botocore_names_the_extra_to_install(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws_credentials(monkeypatch)
    # (None in sys.modules is how Python marks a module that cannot be imported.)
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    with pytest.raises(streamwrap.MissingDependencyError, match=r"streamwrap\[bedrock\]"):
        await make_model(emu, api_key=None, region="us-east-1")("hi")
    # A Bedrock API key needs no botocore.
    response = await make_model(emu)("hi")
    assert await response.aread()
