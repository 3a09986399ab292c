"""The chat page in a real browser: headless Chromium (the system's, driven by Playwright)
loads the ``streamwrap serve`` app, backed by the emulator with a slowly paced reply, and
watches the answer grow, over SSE and over the websocket; Stop cancels the reply upstream;
a reply ends with the same summary over both; the end of a reply stays in view; a reload
(or a new tab) asks for the token, which stays out of every URL and log line.

Needs Chromium (``chromium`` on the PATH, /usr/bin/chromium, or ``$STREAMWRAP_CHROMIUM``)
and the ``playwright`` package; skips, saying which is missing, otherwise. Screenshots go
to ``tests/artifacts/`` (or ``$STREAMWRAP_ARTIFACTS``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("websockets")
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed (pip install playwright; Chromium comes from the system)",
)


def _chromium() -> str | None:
    chosen = os.environ.get("STREAMWRAP_CHROMIUM")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip(
        "Chromium not found (looked for $STREAMWRAP_CHROMIUM, chromium on the PATH, /usr/bin/chromium); "
        "install it with: apt-get install chromium",
        allow_module_level=True,
    )

import streamwrap  # noqa: E402
from streamwrap import EndEvent  # noqa: E402
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec  # noqa: E402
from streamwrap.web import MemoryStreamStore, StreamStore, chat_app  # noqa: E402
from tests.support.redis_server import RedisServer, redis_server_or_skip  # noqa: E402
from tests.support.router import path_router  # noqa: E402
from tests.support.server import Server  # noqa: E402

TOKEN = "browser-t0ken"
ARTIFACTS = Path(os.environ.get("STREAMWRAP_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
# 30 chunks, 30 ms apart: slow enough to watch the text grow, quick enough for a test.
CHUNKS = [f"word{i:02d} " for i in range(29)] + ["end."]
ANSWER = "".join(CHUNKS)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--disable-sync",
    "--mute-audio",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except sync_api.Error as exc:
            pytest.skip(f"Chromium at {CHROMIUM} did not start under Playwright: {str(exc).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture
def ends() -> list[EndEvent]:
    """The end event of every response the server's model made."""
    return []


def start_server(
    emu: Emulator,
    ends: list[EndEvent],
    *,
    price_provider: str | None = None,
    store: StreamStore | None = None,
    **options: Any,
) -> Server:
    def record(event: Any) -> None:
        if isinstance(event, EndEvent):
            ends.append(event)

    model = streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "emulator-1",
            "base_url": emu.openai_base_url,
            "api_key": "sk-test",
            "max_retries": 0,
            "response_callback": record,
            "price_provider": price_provider,
        }
    )
    return Server(
        chat_app(model, token=TOKEN, heartbeat=1.0, title="streamwrap test", store=store), **options
    )


@pytest.fixture
def server(emu: Emulator, ends: list[EndEvent]) -> Iterator[Server]:
    running = start_server(emu, ends)
    yield running
    running.stop()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def logged_server(emu: Emulator, ends: list[EndEvent]) -> Iterator[tuple[Server, list[str]]]:
    """A server with uvicorn's access log on, and the lines it logged: requests in
    ``uvicorn.access``, websocket handshakes in ``uvicorn.error``."""
    running = start_server(emu, ends, log_level="info")
    # (after the server configured logging, which replaces the loggers' handlers)
    collect = _Lines()
    loggers = [logging.getLogger("uvicorn.access"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(collect)
    yield running, collect.lines
    running.stop()
    for logger in loggers:
        logger.removeHandler(collect)


def open_page(browser: Any, server: Server, width: int = 900, height: int = 700) -> Any:
    """A new tab on the URL ``streamwrap serve`` prints; ``page.problems`` collects the
    console's errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{server.url}/?token={TOKEN}")
    page.problems = problems
    return page


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    opened = open_page(browser, server)
    yield opened
    opened.context.close()


@pytest.fixture
def small_page(browser: Any, server: Server) -> Iterator[Any]:
    """A phone-sized window: a long reply overflows the transcript."""
    opened = open_page(browser, server, width=420, height=480)
    yield opened
    opened.context.close()


def state(page: Any) -> dict[str, Any]:
    """The last reply's text, the status and the info line, read in one round trip."""
    return dict(
        page.evaluate("""() => {
        const texts = document.querySelectorAll('[data-testid="assistant-text"]');
        const infos = document.querySelectorAll('[data-testid="info"]');
        return {
            text: texts.length ? texts[texts.length - 1].textContent : "",
            info: infos.length ? infos[infos.length - 1].textContent : "",
            status: document.querySelector('[data-testid="status"]').textContent,
        };
    }""")
    )


def send(page: Any, transport: str, prompt: str) -> None:
    page.get_by_test_id(f"transport-{transport}").check()
    box = page.get_by_test_id("prompt")
    box.fill(prompt)
    box.press("Enter")


def wait_until_ready(page: Any) -> None:
    sync_api.expect(page.get_by_test_id("status")).to_have_text("ready", timeout=15_000)


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_the_page_streams_the_reply_as_it_grows(
    emu: Emulator, page: Any, transport: str, ends: list[EndEvent]
) -> None:
    # The token came in the URL and left the address bar at once.
    assert "token" not in page.url
    emu.script(
        Reply(reasoning=["Thinking ", "it over."], text=CHUNKS, delay=0.03, usage=(12, 32)),
        Reply(text=["Second ", "answer."], usage=(40, 2)),
    )
    send(page, transport, "Count for me")
    sync_api.expect(page.get_by_test_id("status")).to_have_text("streaming")
    seen: list[int] = []
    deadline = time.monotonic() + 20
    while True:
        now = state(page)
        seen.append(len(now["text"]))
        if now["status"] == "ready":
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.04)
    # The text grew in steps while the reply streamed, not all at once at the end.
    partial = sorted({n for n in seen if 0 < n < len(ANSWER)})
    assert len(partial) >= 3, seen
    assert seen == sorted(seen), "the text never shrinks"

    final = state(page)
    assert final["text"] == ANSWER
    # Exactly once on the whole page: no replay, no final copy appended to the deltas.
    assert page.evaluate("(answer) => document.body.innerText.split(answer).length - 1", ANSWER) == 1
    assert "32 tokens" in final["info"] and "finish: stop" in final["info"], final["info"]
    assert "tokens/s" in final["info"]
    reasoning = page.get_by_test_id("reasoning").last
    sync_api.expect(reasoning).to_be_visible()
    sync_api.expect(reasoning).to_contain_text("Thinking it over.")
    sync_api.expect(page.get_by_test_id("error")).to_be_hidden()
    assert ends[-1].status == "finished"

    # The conversation goes with the next message: the first answer, without its reasoning.
    send(page, transport, "And again")
    wait_until_ready(page)
    assert state(page)["text"] == "Second answer."
    assert emu.requests[-1].json["messages"] == [
        {"role": "user", "content": "Count for me"},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "And again"},
    ]
    screenshot(page, transport)
    assert page.problems == []


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_stop_cancels_the_reply_upstream(
    emu: Emulator, page: Any, transport: str, ends: list[EndEvent]
) -> None:
    slow = [f"slow{i:02d} " for i in range(100)]
    emu.script(Reply(text=slow, delay=0.05))
    send(page, transport, "Go on and on")
    sync_api.expect(page.get_by_test_id("assistant-text").last).to_contain_text("slow02", timeout=10_000)
    page.get_by_test_id("stop").click()
    wait_until_ready(page)
    stopped = state(page)
    assert stopped["info"].startswith("stopped"), stopped
    assert 0 < len(stopped["text"]) < len("".join(slow))
    # The server saw the browser go (SSE) or the cancel message (websocket), and cancelled
    # the provider's stream.
    deadline = time.monotonic() + 10
    while not ends:
        assert time.monotonic() < deadline, "the response never ended on the server"
        time.sleep(0.05)
    assert ends[-1].status == "cancelled"
    assert ends[-1].text.startswith(stopped["text"])
    # The page goes on working after a stop.
    emu.script(Reply(text=["after ", "stop"]))
    send(page, transport, "Shorter, please")
    wait_until_ready(page)
    assert state(page)["text"] == "after stop"
    screenshot(page, f"{transport}-stopped")
    assert page.problems == []


def test_errors_show_in_the_transcript(emu: Emulator, page: Any) -> None:
    emu.script(Reply(status=429, error={"message": "Rate limit reached for tests", "type": "requests"}))
    send(page, "sse", "hello?")
    wait_until_ready(page)
    error = page.get_by_test_id("error").last
    sync_api.expect(error).to_be_visible()
    sync_api.expect(error).to_contain_text("429")
    sync_api.expect(error).to_contain_text("Rate limit reached for tests")
    assert page.problems == []


# -- the token ------------------------------------------------------------------------------------


def _carries(url: str) -> bool:
    """Whether a URL as sent to the server carries the token (a fragment is not sent)."""
    sent = urlsplit(url)._replace(fragment="").geturl()
    return TOKEN in sent or quote(TOKEN, safe="") in sent


def test_a_reload_or_a_new_tab_asks_for_the_token_which_stays_out_of_urls_and_logs(
    browser: Any, emu: Emulator, logged_server: tuple[Server, list[str]]
) -> None:
    server, log = logged_server
    context = browser.new_context(viewport={"width": 900, "height": 700})
    urls: list[str] = []
    context.on("request", lambda request: urls.append(request.url))
    problems: list[str] = []

    def new_tab() -> Any:
        tab = context.new_page()
        tab.on("websocket", lambda ws: urls.append(ws.url))
        tab.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        tab.on("pageerror", lambda error: problems.append(str(error)))
        return tab

    emu.script(*(Reply(text=[f"answer {i}"]) for i in range(1, 7)))
    # The URL `streamwrap serve` prints: the token in the fragment, which the browser never
    # sends (the server answers the locked page), and the page checks and keeps itself.
    page = new_tab()
    opened = page.goto(f"{server.url}/#token={TOKEN}")
    assert opened is not None and opened.status == 401
    sync_api.expect(page.get_by_test_id("gate")).to_be_hidden()
    assert "token" not in page.url
    send(page, "sse", "one")
    wait_until_ready(page)
    assert state(page)["text"] == "answer 1"

    # A reload: the address bar has no token any more, the tab still has it.
    reloaded = page.reload()
    assert reloaded is not None and reloaded.status == 401  # (the request itself carried none)
    sync_api.expect(page.get_by_test_id("prompt")).to_be_visible()
    sync_api.expect(page.get_by_test_id("gate")).to_be_hidden()
    sync_api.expect(page.get_by_test_id("model")).to_have_text("openai_chat · emulator-1")
    for i, transport in enumerate(("ws", "sse"), start=2):
        send(page, transport, "again")
        wait_until_ready(page)
        assert state(page)["text"] == f"answer {i}", transport

    # A new tab on the bare URL asks for the token, and says so when it is wrong.
    tab = new_tab()
    bare = tab.goto(server.url + "/")
    assert bare is not None and bare.status == 401
    gate = tab.get_by_test_id("gate")
    sync_api.expect(gate).to_be_visible()
    sync_api.expect(tab.get_by_test_id("prompt")).to_be_hidden()
    assert tab.get_by_test_id("model").text_content() == ""  # not even which model, yet
    tab.get_by_test_id("token-input").fill("not-the-token")
    tab.get_by_test_id("token-submit").click()
    message = tab.get_by_test_id("token-message")
    sync_api.expect(message).to_be_visible()
    sync_api.expect(message).to_contain_text("Wrong token")
    sync_api.expect(tab.get_by_test_id("prompt")).to_be_hidden()
    screenshot(tab, "token")
    tab.get_by_test_id("token-input").fill(TOKEN)
    tab.get_by_test_id("token-input").press("Enter")
    sync_api.expect(gate).to_be_hidden()
    sync_api.expect(tab.get_by_test_id("model")).to_have_text("openai_chat · emulator-1")
    for i, transport in enumerate(("sse", "ws"), start=4):
        send(tab, transport, "from the new tab")
        wait_until_ready(tab)
        assert state(tab)["text"] == f"answer {i}", transport

    # A hand-written link with the token in its query still works; it is the one request
    # that carries the token (and streamwrap serve keeps it out of its log).
    queried = new_tab()
    queried.goto(f"{server.url}/?token={TOKEN}")
    assert "token" not in queried.url
    sync_api.expect(queried.get_by_test_id("prompt")).to_be_visible()
    send(queried, "ws", "by query")
    wait_until_ready(queried)
    assert state(queried)["text"] == "answer 6"
    context.close()

    # No request but the first carried the token: not the API calls, not the websocket.
    assert any("/ws" in url for url in urls) and any("/api/chat" in url for url in urls), urls
    assert [url for url in urls if _carries(url)] == [f"{server.url}/?token={TOKEN}"], urls
    # The log: requests and websocket handshakes, the token only in the printed URL's line
    # (which `streamwrap serve` keeps out of its log).
    assert sum("POST /api/chat" in line for line in log) == 3, log
    assert sum("WebSocket /ws" in line for line in log) == 3, log
    assert [line for line in log if TOKEN in line] == [
        line for line in log if f"GET /?token={TOKEN} " in line
    ] and len([line for line in log if TOKEN in line]) == 1, log
    # Only the refused checks of a wrong token showed in the console.
    assert all("401" in problem for problem in problems), problems


def test_the_page_needs_the_token_for_every_call(browser: Any, server: Server) -> None:
    context = browser.new_context()
    page = context.new_page()
    reply = page.goto(server.url + "/?token=wrong")
    assert reply is not None and reply.status == 401
    sync_api.expect(page.get_by_test_id("token-message")).to_contain_text("Wrong token")
    # The locked page's script cannot chat without the token either.
    status = page.evaluate("""async () => (await fetch("api/chat", {method: "POST",
        headers: {"Content-Type": "application/json"}, body: '{"prompt": "hi"}'})).status""")
    assert status == 401
    context.close()


# -- the summary ------------------------------------------------------------------------------------

SUMMARY_TEXT = [f"piece{i:02d} " for i in range(12)]
SUMMARY_REPLIES = {
    "finished": Reply(text=SUMMARY_TEXT, usage=(9, 12), delay=0.01),
    "estimated": Reply(text=SUMMARY_TEXT, stream_usage=False, delay=0.01),
    # All the text, then nothing: Stop comes while the reply is stalled.
    "stopped": Reply(text=SUMMARY_TEXT, delay=0.01, fault=Fault.stall_after(len(SUMMARY_TEXT), 20)),
    "failed": Reply(text=SUMMARY_TEXT, delay=0.01, fault=Fault.error_event_after(5, "upstream fell over")),
}


def _estimate(text: str) -> int:
    return math.ceil(len(text) / 4)  # streamwrap's estimate: about 4 characters a token


def _masked(summary: str) -> str:
    """A summary with its timings (which differ from run to run) as N."""
    return re.sub(r"\b\d+\.\d+ (s|tokens/s)\b", r"N \1", summary)


@pytest.mark.parametrize("outcome", list(SUMMARY_REPLIES))
def test_a_reply_is_summarised_alike_over_sse_and_the_websocket(
    emu: Emulator, page: Any, outcome: str, ends: list[EndEvent]
) -> None:
    seen = {}
    for transport in ("sse", "ws"):
        emu.script(SUMMARY_REPLIES[outcome])
        send(page, transport, f"{outcome} over {transport}")
        if outcome == "stopped":
            sync_api.expect(page.get_by_test_id("assistant-text").last).to_have_text("".join(SUMMARY_TEXT))
            page.get_by_test_id("stop").click()
        wait_until_ready(page)
        seen[transport] = {**state(page), "error": page.get_by_test_id("error").last.text_content()}
        screenshot(page, f"summary-{outcome}-{transport}")
    sse, ws = seen["sse"], seen["ws"]
    assert _masked(sse["info"]) == _masked(ws["info"]), seen
    assert sse["text"] == ws["text"] and sse["error"] == ws["error"], seen
    expected = {
        "finished": "12 tokens · N tokens/s · N s · finish: stop",
        "estimated": f"~{_estimate(sse['text'])} tokens (estimated) · N s · finish: stop",
        "stopped": f"stopped · ~{_estimate(sse['text'])} tokens (estimated) · N s",
        "failed": f"failed · ~{_estimate(sse['text'])} tokens (estimated) · N s",
    }[outcome]
    assert _masked(sse["info"]) == expected, sse
    if outcome == "estimated":
        # The page shows the server's estimate: the same count.
        assert ends[-1].usage.source == "estimated"
        assert f"~{ends[-1].usage.output_tokens} tokens" in sse["info"]
    if outcome == "failed":
        assert "upstream fell over" in sse["error"]
    assert page.problems == []


def test_the_summary_shows_the_cost_when_it_is_known(
    browser: Any, emu: Emulator, ends: list[EndEvent]
) -> None:
    from streamwrap._cost import format_money
    from tests.support.prices import INPUT, OUTPUT, snapshot, usd

    data_snapshot = pytest.importorskip("genai_prices.data_snapshot")
    data_snapshot.set_custom_snapshot(snapshot())
    running = start_server(emu, ends, price_provider="openai")
    page = open_page(browser, running)
    try:
        seen = {}
        for transport in ("sse", "ws"):
            emu.script(SUMMARY_REPLIES["finished"])
            send(page, transport, f"priced over {transport}")
            wait_until_ready(page)
            seen[transport] = state(page)["info"]
            screenshot(page, f"summary-cost-{transport}")
    finally:
        page.context.close()
        running.stop()
        data_snapshot.set_custom_snapshot(None)
    amount = usd((9, INPUT), (12, OUTPUT))
    assert ends[-1].cost is not None and ends[-1].cost.amount == amount
    for transport, info in seen.items():
        assert _masked(info) == f"12 tokens · N tokens/s · N s · {format_money(amount)} · finish: stop", (
            transport,
            info,
        )
    assert page.problems == []


# -- the end of a reply stays in view ------------------------------------------------------------------

# (The last line ends without a newline: the summary then needs a line of its own.)
LINES = [f"line {i:02d}\n" for i in range(59)] + ["line 59, the end."]


def in_view(page: Any, testid: str) -> bool:
    """Whether the last element with this test id lies wholly inside the transcript's box."""
    return bool(
        page.evaluate(
            """(testid) => {
        const all = document.querySelectorAll(`[data-testid="${testid}"]`);
        const box = all[all.length - 1].getBoundingClientRect();
        const view = document.querySelector('[data-testid="transcript"]').getBoundingClientRect();
        return box.height > 0 && box.top >= view.top - 1 && box.bottom <= view.bottom + 1;
    }""",
            testid,
        )
    )


def distance_from_bottom(page: Any) -> float:
    return float(
        page.evaluate("""() => {
        const t = document.querySelector('[data-testid="transcript"]');
        return t.scrollHeight - t.scrollTop - t.clientHeight;
    }""")
    )


ENDINGS = {
    "summary": (Reply(text=LINES, delay=0.005, usage=(5, 60)), ["info"]),
    "error": (
        Reply(text=LINES, delay=0.005, fault=Fault.error_event_after(len(LINES), "gone")),
        ["error", "info"],
    ),
    "tool call": (
        Reply(
            text=LINES, delay=0.005, tool_calls=[ToolCallSpec("lookup", '{"query": "the weather in Lisbon"}')]
        ),
        ["tool-call", "info"],
    ),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_the_end_of_a_long_reply_stays_in_view(
    emu: Emulator, small_page: Any, transport: str, ending: str
) -> None:
    reply, last_parts = ENDINGS[ending]
    emu.script(reply)
    send(small_page, transport, "A long one, please")
    wait_until_ready(small_page)
    # Stuck to the bottom (the padding below the last message could hide a line or so of
    # summary from a check of the summary alone), and so the end of the reply is in view.
    assert distance_from_bottom(small_page) <= 4
    for testid in last_parts:
        assert in_view(small_page, testid), (testid, distance_from_bottom(small_page))
    screenshot(small_page, f"end-in-view-{ending.replace(' ', '-')}-{transport}")
    assert small_page.problems == []


def settled_scroll_top(page: Any) -> float:
    """The transcript's scroll position once a (smooth) scroll has come to rest."""
    last = None
    for _ in range(50):
        now = float(page.evaluate("() => document.querySelector('[data-testid=\"transcript\"]').scrollTop"))
        if now == last:
            return now
        last = now
        time.sleep(0.05)
    raise AssertionError("the transcript never stopped scrolling")


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_scrolling_up_mid_reply_is_not_undone(emu: Emulator, small_page: Any, transport: str) -> None:
    emu.script(Reply(text=LINES, delay=0.04, usage=(5, 60)))
    send(small_page, transport, "A long one, please")
    text = small_page.get_by_test_id("assistant-text").last
    sync_api.expect(text).to_contain_text("line 15", timeout=15_000)  # (the first call imports the SDK)
    box = small_page.get_by_test_id("transcript").bounding_box()
    small_page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    small_page.mouse.wheel(0, -250)
    top = settled_scroll_top(small_page)
    assert distance_from_bottom(small_page) > 100
    # More text arrives; the reader stays where they scrolled to.
    sync_api.expect(text).to_contain_text("line 35", timeout=10_000)
    assert settled_scroll_top(small_page) == pytest.approx(top, abs=1)
    assert distance_from_bottom(small_page) > 100
    # Back at the bottom, the page follows the reply again, to its summary.
    small_page.mouse.wheel(0, 100_000)
    settled_scroll_top(small_page)
    wait_until_ready(small_page)
    assert in_view(small_page, "info"), (distance_from_bottom(small_page), settled_scroll_top(small_page))
    assert small_page.problems == []


# -- resumable replies (a server with a stream store, as `streamwrap serve` has) ------------------


def _follows_a_reply(path: str) -> bool:
    return path.endswith(("/stream", "/stop"))


@pytest.fixture(params=["memory", "redis", "redis, two workers"])
def resumable_page(
    request: pytest.FixtureRequest, browser: Any, emu: Emulator, ends: list[EndEvent]
) -> Iterator[Any]:
    """The page of a server with a stream store: in memory; in Redis; or two workers sharing
    a Redis behind one front, which sends resumes and stops to the worker that does not
    generate (as a load balancer may, after a reload)."""
    redis_server: RedisServer | None = None
    servers: list[Server] = []
    if request.param == "memory":
        servers.append(start_server(emu, ends, store=MemoryStreamStore()))
    else:
        from streamwrap.web import RedisStreamStore

        redis_server = redis_server_or_skip()
        for _ in range(1 if request.param == "redis" else 2):
            servers.append(start_server(emu, ends, store=RedisStreamStore(redis_server.url, lease=1.0)))
    if len(servers) == 2:
        servers.append(Server(path_router(servers[0].url, servers[1].url, _follows_a_reply)))
    opened = open_page(browser, servers[-1])
    yield opened
    opened.context.close()
    for server in reversed(servers):
        server.stop()
    if redis_server is not None:
        redis_server.close()


def test_a_reload_mid_reply_picks_the_reply_up_and_shows_it_once(
    emu: Emulator, resumable_page: Any, ends: list[EndEvent]
) -> None:
    page = resumable_page
    slow = [f"slow{i:02d} " for i in range(60)]
    emu.script(Reply(text=slow, delay=0.04), Reply(text=["next ", "one"]))
    send(page, "sse", "Tell me a long story")
    sync_api.expect(page.get_by_test_id("assistant-text").last).to_contain_text("slow03", timeout=10_000)
    page.reload()
    # The conversation is back, and the reply goes on where it is, whole.
    sync_api.expect(page.get_by_test_id("user").last).to_have_text("YouTell me a long story")
    # (The page is "ready" at once after the reload, until it has checked its token and
    # found the reply: wait for the reply's end.)
    sync_api.expect(page.get_by_test_id("assistant").last).to_have_attribute(
        "data-status", "finished", timeout=15_000
    )
    wait_until_ready(page)
    final = state(page)
    assert final["text"] == "".join(slow)
    assert page.evaluate("(answer) => document.body.innerText.split(answer).length - 1", "".join(slow)) == 1
    assert page.get_by_test_id("assistant").count() == 1
    assert len(emu.requests) == 1  # resumed, not asked again
    assert ends[-1].status == "finished"
    # The next message carries the resumed answer.
    send(page, "sse", "And then?")
    wait_until_ready(page)
    assert state(page)["text"] == "next one"
    assert emu.requests[-1].json["messages"][1] == {"role": "assistant", "content": "".join(slow)}
    screenshot(page, "resumed")
    # (The reload itself is answered 401, the locked page, as a reload is: the tab then
    # sends its token, which it kept, with every request.)
    assert [p for p in page.problems if "401" not in p] == []


def test_stop_on_a_resumable_reply_asks_the_server(
    emu: Emulator, resumable_page: Any, ends: list[EndEvent]
) -> None:
    page = resumable_page
    slow = [f"slow{i:02d} " for i in range(100)]
    emu.script(Reply(text=slow, delay=0.05))
    send(page, "sse", "Go on and on")
    sync_api.expect(page.get_by_test_id("assistant-text").last).to_contain_text("slow02", timeout=10_000)
    page.get_by_test_id("stop").click()
    wait_until_ready(page)
    stopped = state(page)
    assert stopped["info"].startswith("stopped"), stopped
    deadline = time.monotonic() + 10
    while not ends:
        assert time.monotonic() < deadline, "the response never ended on the server"
        time.sleep(0.05)
    assert ends[-1].status == "cancelled"
    assert ends[-1].text == stopped["text"]  # every chunk the server had reached the page
    assert page.problems == []
