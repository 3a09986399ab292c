"""Shared fixtures: the provider emulator, the recordings folder, both async backends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import streamwrap
from streamwrap.testing import Emulator

# Real provider traffic recorded by other projects, kept beside the repository (never
# copied into it). Tests that need it skip when it is absent.
RECORDINGS = Path(os.environ.get("STREAMWRAP_RECORDINGS", Path(__file__).resolve().parents[2] / "shared" / "recordings"))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The session's emulator, with an empty script and no recorded requests."""
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def own_emu() -> Iterator[Emulator]:
    """An emulator of the test's own, for tests that count open connections (the shared
    one also holds the idle keep-alive connections of earlier tests' clients)."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def model(emu: Emulator) -> streamwrap.ModelWrapper:
    """A streaming ``openai_chat`` model pointed at the emulator, without retries."""
    return streamwrap.load_model(
        {
            "model_type": "openai_chat",
            "model_name": "emulator-1",
            "stream": True,
            "base_url": emu.openai_base_url,
            "api_key": "sk-test-secret-key-0123456789",
            "max_retries": 0,
        }
    )


@pytest.fixture
def recordings() -> Path:
    if not RECORDINGS.is_dir():
        pytest.skip(f"recordings folder not found at {RECORDINGS}")
    return RECORDINGS
