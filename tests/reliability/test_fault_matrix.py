"""The fault matrix: every wire format the emulator speaks by every way a stream fails.

Each row of ``DIALECTS`` says how to point one wrapper at the emulator and what its
provider does differently (whether usage is restated mid-stream, whether its errors carry
a code, whether it has an in-band error distinct from its error event, where an HTTP
error body keeps its message). Each row of ``FAULTS`` scripts the emulator and states the
expected outcome, provider-independent. One test runs the product: the call, the stream,
the typed error and where it was raised, the partial text (exactly the scripted chunks
before the fault), the finish reason, the usage rule, and that afterwards the failed
stream holds no connection.

The usage rule (``_channel.py``/``_response.py``): after a failure, ``usage`` is the last
reading the provider sent before it; where there was none but the stream had opened (the
request was accepted, so tokens may be billed), a local estimate marked
``source="estimated"``; never a silent 0. DashScope and Gemini restate usage on every
chunk (Vertex AI only on the last: its earlier chunks carry none); OpenAI and Ollama only at
the end, so a failed stream of theirs is estimated;
Anthropic reports the input side (and an early output count) at the start. Bedrock frames
its stream in binary (AWS event streams): its malformed row is a message whose checksum is
wrong, its truncated row a message cut in half.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any, get_args, get_type_hints

import anyio
import pytest

import streamwrap
from streamwrap import Usage
from streamwrap.testing import Emulator, Fault, Reply
from tests.support import faults, providers
from tests.support.providers import PROVIDERS, Provider

pytestmark = pytest.mark.anyio

# Multi-byte characters on purpose: the slow trickle splits them across reads.
TEXT = ("Hé", "llo ", "wörld, ", "世界 ", "and ", "more")
PROMPT_TOKENS = 7
USAGE = (PROMPT_TOKENS, len(TEXT))  # one completion token per chunk, so readings count chunks
AFTER = 3  # content chunks sent before a mid-stream fault
FAULT_MESSAGE = "The model is overloaded right now."
FAULT_CODE = "overloaded"
TIMEOUT = 0.3  # the small first-token/idle timeout of the timeout rows
STALL = 1.0  # how long a stall lasts: well past TIMEOUT, so only a broken timeout lets it pass
GENEROUS = 5.0  # the timeouts of every other row: finite, so a broken row cannot hang
RETRY_AFTER = 7.0
PROMPT = "Say hello to the world please"

# (input, output, total, source) of a usage reading.
UsageRow = tuple[int | None, int | None, int | None, str]
UNKNOWN: UsageRow = (None, None, None, "unknown")


def _reading(chunks: int) -> UsageRow:
    return (PROMPT_TOKENS, chunks, PROMPT_TOKENS + chunks, "provider")


def _estimated(chunks: int) -> UsageRow:
    usage = Usage.estimate(len(PROMPT), len("".join(TEXT[:chunks])))
    return (usage.input_tokens, usage.output_tokens, usage.total_tokens, "estimated")


def _restated(chunks: int) -> UsageRow:
    # Every content chunk restates the cumulative usage: the last one before the fault stays.
    return _reading(chunks) if chunks else _estimated(0)


def _input_at_the_start(chunks: int) -> UsageRow:
    # The input side comes first, with an early output count of 1 (Anthropic's
    # message_start, sent with the first content chunk); the full count only at the end.
    return (PROMPT_TOKENS, 1, PROMPT_TOKENS + 1, "provider") if chunks else _estimated(0)


def _at_the_end_only(chunks: int) -> UsageRow:
    # Usage only comes after the finish, which a failed stream never reaches.
    return _estimated(chunks)


@dataclass(frozen=True)
class Dialect:
    """One wire format, through its wrapper, and how its provider differs (as data)."""

    provider: Provider  # its wrapper, as the provider table points it at the emulator
    api_key: str | None
    #: the usage a response keeps after a failure that followed ``n`` content chunks
    usage_after_failure: Callable[[int], UsageRow]
    #: the ``code`` of the error raised for a mid-stream error scripted with code ``c``
    stream_error_code: Callable[[str], str | None]
    #: the message inside the provider's HTTP error body
    body_message: Callable[[Any], str]
    #: whether the provider has an in-band error object distinct from its error event
    #: (Gemini and Ollama send only one form: the error event row covers it)
    inband_error: bool
    #: the provider's name as its errors report it, where it is not its emulator dialect's
    #: (an out-of-tree provider speaking a built-in dialect)
    reported_as: str | None = None

    @property
    def name(self) -> str:
        """The provider's name, as errors report it (its emulator dialect); the id prefix."""
        return self.reported_as or str(self.provider.dialect)


DIALECTS = (
    Dialect(
        provider=PROVIDERS["openai_chat"],
        api_key="sk-test-secret-key-0123456789",
        usage_after_failure=_at_the_end_only,
        stream_error_code=lambda code: code,
        body_message=lambda body: str(body["error"]["message"]),
        inband_error=True,
    ),
    Dialect(
        provider=PROVIDERS["azure_openai_chat"],
        api_key="azure-test-secret-key-0123456789",
        usage_after_failure=_at_the_end_only,
        stream_error_code=lambda code: code,
        body_message=lambda body: str(body["error"]["message"]),
        inband_error=True,
        reported_as="azure_openai",
    ),
    Dialect(
        provider=PROVIDERS["openai_responses"],
        api_key="sk-test-secret-key-0123456789",
        usage_after_failure=_at_the_end_only,  # usage comes with response.completed
        stream_error_code=lambda code: code,
        body_message=lambda body: str(body["error"]["message"]),
        inband_error=True,  # a response.failed event, besides the error event
        reported_as="openai",  # the provider its errors name: the same API, another resource
    ),
    Dialect(
        provider=PROVIDERS["dashscope_chat"],
        api_key="sk-dashscope-test-secret-0123456789",
        usage_after_failure=_restated,
        stream_error_code=lambda code: code,
        body_message=lambda body: str(body["message"]),
        inband_error=True,
    ),
    Dialect(
        provider=PROVIDERS["gemini_chat"],
        api_key="AIza-test-secret-key-0123456789",
        usage_after_failure=_restated,
        stream_error_code=lambda code: code,
        body_message=lambda body: str(body["error"]["message"]),
        inband_error=False,
    ),
    Dialect(
        provider=PROVIDERS["vertex_gemini_chat"],
        api_key="AQ.vertex-test-secret-key-0123456789",
        # Gemini's stream, but the chunks before the last say only {"trafficType": ...}.
        usage_after_failure=_at_the_end_only,
        stream_error_code=lambda code: code,
        body_message=lambda body: str(body["error"]["message"]),
        inband_error=False,
    ),
    Dialect(
        provider=PROVIDERS["ollama_chat"],
        api_key=None,
        usage_after_failure=_at_the_end_only,
        stream_error_code=lambda code: None,  # Ollama's error is {"error": "<message>"}, no code
        body_message=lambda body: str(body["error"]),
        inband_error=False,
    ),
    Dialect(
        provider=PROVIDERS["anthropic_chat"],
        api_key="sk-ant-test-secret-key-0123456789",
        usage_after_failure=_input_at_the_start,
        stream_error_code=lambda code: code,  # the error's "type"
        body_message=lambda body: str(body["error"]["message"]),
        inband_error=False,  # only the error event
    ),
    Dialect(
        provider=PROVIDERS["bedrock_chat"],
        api_key="bedrock-api-key-test-secret-0123456789",
        usage_after_failure=_at_the_end_only,  # the metadata event, after messageStop
        # An exception message: its type is one of ConverseStream's (the emulator sends
        # modelStreamErrorException for a code that is none of them).
        stream_error_code=lambda code: "modelStreamErrorException",
        body_message=lambda body: str(body["message"]),  # (the type is in x-amzn-ErrorType)
        inband_error=False,  # only the exception message
    ),
)


@dataclass(frozen=True)
class Case:
    """One fault: what the emulator answers, and the outcome every dialect must show.

    ``error`` is the exact class expected (``None``: the response succeeds), ``raised_by``
    says whether ``await model(...)`` or the iteration raises it, ``after`` is how many
    content chunks arrived before the fault.
    """

    name: str
    replies: Sequence[Reply]
    error: type[streamwrap.StreamwrapError] | None
    raised_by: str = "stream"
    after: int = AFTER
    config: Mapping[str, Any] = field(default_factory=dict)
    status: int | None = None
    retry_after: float | None = None
    #: the error's ``code`` (a timeout's kind) ...
    code: str | None = None
    #: ... or the provider's error code scripted, as ``Dialect.stream_error_code`` reports it
    provider_code: str | None = None
    message: str | None = None
    #: (status, error class name) of each attempt recorded in ``response.attempts``
    attempts: Sequence[tuple[int, str | None]] = ((200, None),)
    needs_inband_error: bool = False


def _reply(fault: Fault | None = None, **kwargs: Any) -> Reply:
    return Reply(text=TEXT, usage=USAGE, fault=fault, **kwargs)


def _http(status: int, **headers: str) -> Case:
    error = faults.HTTP_ERRORS[status]
    return Case(
        name=f"http_{status}",
        replies=(Reply(status=status, headers=headers),),
        error=error,
        raised_by="call",
        after=0,
        status=status,
        retry_after=float(headers["Retry-After"]) if "Retry-After" in headers else None,
        attempts=((status, error.__name__),),
    )


FAULTS = (
    _http(401),
    _http(404),
    _http(429, **{"Retry-After": f"{RETRY_AFTER:g}"}),
    _http(500),
    _http(503),
    Case(
        name="retry_503_then_ok",
        replies=(Reply(status=503, headers={"Retry-After": "0"}), _reply()),
        error=None,
        after=len(TEXT),
        config={"max_retries": 1},
        attempts=((503, "ServerError"), (200, None)),
    ),
    Case(
        name="error_event",
        replies=(_reply(Fault.error_event_after(AFTER, message=FAULT_MESSAGE, code=FAULT_CODE)),),
        error=streamwrap.ProviderStreamError,
        provider_code=FAULT_CODE,
        message=FAULT_MESSAGE,
    ),
    Case(
        name="inband_error",
        replies=(_reply(Fault.inband_error_after(AFTER, message=FAULT_MESSAGE, code=FAULT_CODE)),),
        error=streamwrap.ProviderStreamError,
        provider_code=FAULT_CODE,
        message=FAULT_MESSAGE,
        needs_inband_error=True,
    ),
    Case(
        name="drop_after",
        replies=(_reply(Fault.drop_after(AFTER)),),
        error=streamwrap.StreamInterruptedError,
    ),
    Case(
        # The headers arrive at once, so the call returns and the iteration raises
        # (_wrapper._raise_if_failed_before_open: only a stream that never opened raises
        # from the call).
        name="first_token_stall",
        replies=(_reply(Fault.stall_after(0, STALL)),),
        error=streamwrap.StreamTimeoutError,
        after=0,
        config={"first_token_timeout": TIMEOUT},
        code="first_token_timeout",
    ),
    Case(
        # The server sits on the request before any header: the stream never opens, so
        # the call itself raises (and the timeout is not retried).
        name="stall_before_headers",
        replies=(Reply(status=503, first_delay=STALL),),
        error=streamwrap.StreamTimeoutError,
        raised_by="call",
        after=0,
        config={"first_token_timeout": TIMEOUT, "max_retries": 2},
        code="first_token_timeout",
    ),
    Case(
        name="idle_stall",
        replies=(_reply(Fault.stall_after(AFTER, STALL)),),
        error=streamwrap.StreamTimeoutError,
        config={"idle_timeout": TIMEOUT},
        code="idle_timeout",
    ),
    Case(
        # Keep-alives every 50 ms, far more often than the timeout: they must not reset it.
        name="keepalive_stall",
        replies=(_reply(Fault.stall_with_keepalive_after(AFTER, STALL, every=0.05)),),
        error=streamwrap.StreamTimeoutError,
        config={"idle_timeout": TIMEOUT},
        code="idle_timeout",
    ),
    Case(
        name="malformed_line",
        replies=(_reply(Fault.malformed_line_after(AFTER)),),
        error=streamwrap.StreamProtocolError,
    ),
    Case(
        name="truncated_json",
        replies=(_reply(Fault.truncated_json_after(AFTER)),),
        error=streamwrap.StreamProtocolError,
    ),
    Case(
        name="end_without_finish",
        replies=(_reply(Fault.end_without_finish_after(AFTER)),),
        error=streamwrap.StreamInterruptedError,
    ),
    Case(
        # One byte per write (about a millisecond apart): every event, and every UTF-8
        # character, arrives split across reads; nothing times out (each event takes well
        # under GENEROUS) and the result is exact.
        name="slow_trickle",
        replies=(_reply(Fault.slow_trickle(0.0001)),),
        error=None,
        after=len(TEXT),
    ),
)


def test_every_fault_kind_has_a_row() -> None:
    scripted = {reply.fault.kind for case in FAULTS for reply in case.replies if reply.fault is not None}
    assert scripted == set(faults.FAULT_KINDS)


def test_the_fault_list_has_every_kind_of_fault() -> None:
    assert set(faults.FAULT_KINDS) == set(get_args(get_type_hints(Fault)["kind"]))


def test_each_failing_row_raises_the_error_of_the_fault_list() -> None:
    for case in FAULTS:
        for reply in case.replies:
            if reply.fault is not None and case.error is not None:
                assert case.error is faults.STREAM_ERRORS[reply.fault.kind], case.name
            elif reply.status >= 400 and case.error is not None and case.status is not None:
                assert case.error is faults.HTTP_ERRORS[reply.status], case.name


def test_every_dialect_of_the_emulator_has_a_row() -> None:
    assert [dialect.provider for dialect in DIALECTS] == list(providers.ONE_PER_DIALECT)


MATRIX = [
    pytest.param(dialect, case, id=f"{dialect.name}-{case.name}")
    for dialect, case in product(DIALECTS, FAULTS)
    if dialect.inband_error or not case.needs_inband_error
]


@pytest.fixture
def models(own_emu: Emulator) -> Iterator[list[Any]]:
    """Models a test makes, closed afterwards: then the emulator has no connection left.

    Closed from this synchronous teardown, outside the test's event loop: ``await
    model.aclose()`` inside an anyio-run trio loop raises RuntimeError (the runtime runs the
    close in the caller's context, whose sniffio variable says "trio").
    """
    made: list[Any] = []
    yield made
    for model in made:
        model.close()
    assert own_emu.wait_idle(3.0)


def make_model(dialect: Dialect, emu: Emulator, config: Mapping[str, Any]) -> Any:
    return providers.make_model(
        emu,
        dialect.provider,
        api_key=dialect.api_key,
        **({"first_token_timeout": GENEROUS, "idle_timeout": GENEROUS} | dict(config)),
    )


@pytest.fixture(scope="module", autouse=True)
def _warm_sdks() -> None:
    """Import each wrapper's SDK and start the runtime once, before the rows run: the
    first-token clock starts at the call, and a cold ``import openai`` alone can take
    longer than the timeout rows allow."""
    with Emulator() as emu:
        for dialect in DIALECTS:
            model = make_model(dialect, emu, {})
            emu.script(Reply(text="warm"))
            assert model.call_sync("hi").text == "warm"
            model.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll without blocking the event loop (a blocked loop would stall the very
    cleanup being waited for)."""
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)
    return predicate()


async def run(
    model: Any,
) -> tuple[Any, list[tuple[bool, str]], streamwrap.StreamwrapError | None, str | None]:
    """Call and iterate; return the response, the items seen, the error and who raised it."""
    try:
        response = await model(PROMPT)
    except streamwrap.StreamwrapError as exc:
        return None, [], exc, "call"
    seen: list[tuple[bool, str]] = []
    try:
        async for is_last, text in response.stream:
            seen.append((is_last, text))
    except streamwrap.StreamwrapError as exc:
        return response, seen, exc, "stream"
    return response, seen, None, None


@pytest.mark.parametrize(("dialect", "case"), MATRIX)
async def test_fault_matrix(own_emu: Emulator, models: list[Any], dialect: Dialect, case: Case) -> None:
    model = make_model(dialect, own_emu, case.config)
    models.append(model)
    own_emu.script(*case.replies)
    with anyio.fail_after(10):
        response, seen, err, raised_by = await run(model)

    # The outcome, and who raised it.
    assert (None if err is None else type(err)) is case.error, f"expected {case.error}, got {err!r}"
    assert raised_by == (case.raised_by if case.error else None)
    assert len(own_emu.requests) == len(case.replies)  # retried exactly as scripted
    if isinstance(err, (streamwrap.ProviderError, streamwrap.StreamError)):
        assert err.provider == dialect.name
    if isinstance(err, streamwrap.StreamError):
        assert err.code == (
            dialect.stream_error_code(case.provider_code) if case.provider_code else case.code
        )
        if case.message is not None:
            assert err.message == case.message
        assert err.partial_text == "".join(TEXT[: case.after])
    if isinstance(err, streamwrap.ProviderHTTPError):
        assert err.status_code == case.status
        assert err.retry_after == case.retry_after
        message = dialect.body_message(err.body)  # the provider's JSON body, parsed
        assert message and message in str(err)
        assert (dialect.api_key or "no key") not in str(err) + repr(err.body)
    if response is not None:
        check_response(response, seen, err, dialect, case)

    # The failed stream holds no connection: it is closed, or idle in the pool, so the
    # next call on the same model works and needs at most one connection in all.
    assert await wait_until(lambda: own_emu.open_connections <= 1)
    own_emu.script(Reply(text=["ok"]))
    with anyio.fail_after(10):
        again = await model("again")
        assert await again.aread() == "ok"
    assert await wait_until(lambda: own_emu.open_connections <= 1), "a connection was left open"


def check_response(
    response: streamwrap.ModelResponse,
    seen: list[tuple[bool, str]],
    err: streamwrap.StreamwrapError | None,
    dialect: Dialect,
    case: Case,
) -> None:
    """The response's own view: snapshots, partial text, finish reason, usage, attempts."""
    expected = "".join(TEXT[: case.after])
    # One snapshot per scripted chunk; a successful stream ends with the whole text.
    snapshots = [(False, "".join(TEXT[:i])) for i in range(1, case.after + 1)]
    assert seen == snapshots + ([] if err else [(True, expected)])
    assert response.partial_text == expected
    assert [(a["status"], a["error"]) for a in response.attempts] == list(case.attempts)
    assert response.error is err
    if err is None:
        assert response.text == expected
        assert response.finish_reason == "stop"
        usage = _reading(len(TEXT))
    else:
        assert response.finish_reason == "error"
        usage = dialect.usage_after_failure(case.after)
    got = response.usage
    assert (got.input_tokens, got.output_tokens, got.total_tokens, got.source) == usage
    # Never a silent 0: a count is the provider's, an estimate said to be one, or None.
    assert got.source in ("provider", "estimated") or {
        got.input_tokens,
        got.output_tokens,
        got.total_tokens,
    } == {None}
