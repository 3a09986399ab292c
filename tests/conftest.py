"""Shared fixtures: the provider emulator, the recordings folder, both async backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import streamwrap
from streamwrap.testing import Emulator
from tests.support import google_auth
from tests.support.providers import make_model
from tests.support.recordings import MISSING, RECORDINGS


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
    return make_model(emu)


@pytest.fixture
def recordings() -> Path:
    """The folder of real provider traffic (tests/support/recordings.py), kept beside the
    repository, never copied into it: tests that need it skip, saying so, without it."""
    if not RECORDINGS.is_dir():
        pytest.skip(MISSING)
    return RECORDINGS


# -- Google credentials: a generated service-account key and a local token endpoint ---------


@pytest.fixture(scope="module")
def key_pair() -> tuple[str, bytes]:
    """A new RSA key: (its private PEM, its public PEM)."""
    return google_auth.new_key()


@pytest.fixture
def token_server(key_pair: tuple[str, bytes]) -> Iterator[google_auth.TokenServer]:
    """Google's OAuth token endpoint on 127.0.0.1, accepting JWTs signed with ``key_pair``."""
    server = google_auth.TokenServer(public_pem=key_pair[1]).start()
    yield server
    server.stop()
