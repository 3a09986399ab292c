"""The console sink: on a real pseudo-terminal and on plain streams."""

from __future__ import annotations

import io
import os
import pty
import termios
from collections.abc import Iterator
from typing import Any, TextIO

import pytest

import streamwrap
from streamwrap import ConsoleSink, EndEvent, StartEvent, TextEvent
from streamwrap.testing import Emulator, Fault, Reply, ToolCallSpec

pytestmark = pytest.mark.anyio

DIM, RESET = "\x1b[2m", "\x1b[0m"
TEXT = ["The ", "quick ", "brown ", "fox."]


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, Any]]:
    """A real pseudo-terminal: the sink writes to its slave end, the test reads the master."""
    master, slave = pty.openpty()
    # No newline translation, so that the bytes read are the bytes written.
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    tty = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115

    def read() -> str:
        tty.flush()
        chunks = []
        os.set_blocking(master, False)
        while True:
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks).decode()

    yield tty, read
    tty.close()
    os.close(master)


async def test_plain_stream_gets_each_piece_once_and_a_final_line(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, reasoning="thinking hard", usage=(5, 4)))
    out = io.StringIO()
    await streamwrap.deliver(await model("hi"), ConsoleSink(out))
    text = out.getvalue()
    assert "\x1b" not in text  # not a terminal: plain text
    answer, stats = text.split("\n", 1)
    assert answer == "The quick brown fox."  # reasoning is off when the stream is no terminal
    assert stats.startswith("[4 tokens in ") and "usage: 5 in / 4 out (provider)" in stats
    assert stats.rstrip().endswith("finish: stop]") and "tokens/s" in stats


async def test_terminal_gets_dimmed_reasoning_apart_from_the_answer(
    emu: Emulator, model: Any, terminal: tuple[TextIO, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, read = terminal
    emu.script(Reply(text=TEXT, reasoning=["thinking ", "hard"], usage=(5, 6)))
    await streamwrap.deliver(await model("hi"), ConsoleSink(tty))
    shown = read()
    assert shown.startswith(f"{DIM}thinking hard{RESET}\n\nThe quick brown fox.\n{DIM}[6 tokens in ")
    assert shown.endswith(f"finish: stop]{RESET}\n")
    assert shown.count("The quick brown fox.") == 1


async def test_no_color_keeps_a_terminal_plain(
    emu: Emulator, model: Any, terminal: tuple[TextIO, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    tty, read = terminal
    emu.script(Reply(text=TEXT, reasoning="hm"))
    await streamwrap.deliver(await model("hi"), ConsoleSink(tty))
    shown = read()
    assert "\x1b" not in shown and shown.startswith("hm\n\nThe quick brown fox.\n[")


async def test_info_file_takes_reasoning_and_stats_away_from_the_answer(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, reasoning="hm"))
    out, info = io.StringIO(), io.StringIO()
    await streamwrap.deliver(await model("hi"), ConsoleSink(out, info_file=info, reasoning=True))
    assert out.getvalue() == "The quick brown fox.\n"
    assert info.getvalue().startswith("hm\n\n[")


async def test_non_streaming_reply_is_printed_once_at_the_end(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT))
    out = io.StringIO()
    await streamwrap.deliver(await model("hi", stream=False), ConsoleSink(out, stats=False))
    assert out.getvalue() == "The quick brown fox.\n"


async def test_failure_cancel_and_tool_calls_are_reported(emu: Emulator, model: Any) -> None:
    emu.script(Reply(text=TEXT, fault=Fault.drop_after(2)))
    out = io.StringIO()
    await streamwrap.deliver(await model("hi"), ConsoleSink(out, stats=False))
    assert out.getvalue().startswith("The quick \n[error: ")

    emu.script(Reply(text=TEXT, delay=0.05))
    out = io.StringIO()
    response = await model("hi")
    async with streamwrap.deliver(response, ConsoleSink(out, stats=False)):
        async for _, text in response.stream:
            if text:
                break
    assert out.getvalue() == "The \n[cancelled]\n"

    emu.script(Reply(tool_calls=[ToolCallSpec("lookup", '{"q": "x"}')]))
    out = io.StringIO()
    await streamwrap.deliver(await model("hi"), ConsoleSink(out, stats=False))
    assert out.getvalue() == '-> lookup({"q": "x"})\n'


async def test_only_the_new_suffix_of_text_so_far_is_printed() -> None:
    out = io.StringIO()
    sink = ConsoleSink(out, stats=False)
    events: list[Any] = [StartEvent("r", 0, "m", "p", True)]
    so_far = ""
    for i, piece in enumerate(["a", "bc", "", "def"], start=1):
        so_far += piece
        events.append(TextEvent("r", i, piece, so_far))
    events.append(
        EndEvent(
            "r",
            5,
            "finished",
            text=so_far,
            reasoning=None,
            tool_calls=[],
            usage=streamwrap.Usage(),
            finish_reason="stop",
            error=None,
            model="m",
            duration=0.1,
            time_to_first_token=0.01,
        )
    )
    for event in events:
        await sink.send(event)
    assert out.getvalue() == "abcdef\n"
