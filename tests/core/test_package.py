"""The public surface: exports, import cost discipline, typing marker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import streamwrap


def test_all_is_exact_and_importable() -> None:
    for name in streamwrap.__all__:
        assert hasattr(streamwrap, name), name
    public = {n for n in dir(streamwrap) if not n.startswith("_")}
    # Nothing public leaks in besides the declared API (submodules excepted).
    assert public - set(streamwrap.__all__) <= {"testing", "web", "annotations"}


def test_import_loads_no_provider_sdk_and_no_event_loop() -> None:
    code = (
        "import sys, streamwrap\n"
        "bad = [m for m in ('openai', 'httpx', 'httpx2', 'litellm', 'dashscope', 'google.genai', "
        "'ollama', 'yaml', 'asyncio') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_error_hierarchy() -> None:
    assert issubclass(streamwrap.ConfigError, streamwrap.StreamwrapError)
    assert issubclass(streamwrap.ProviderHTTPError, streamwrap.ProviderError)
    assert issubclass(streamwrap.RateLimitError, streamwrap.ProviderHTTPError)
    assert issubclass(streamwrap.StreamTimeoutError, streamwrap.StreamError)
    assert issubclass(streamwrap.StreamInterruptedError, streamwrap.StreamError)
    assert issubclass(streamwrap.MissingDependencyError, ImportError)


def test_py_typed_marker_ships() -> None:
    assert (Path(streamwrap.__file__).parent / "py.typed").is_file()


def test_missing_sdk_names_the_extra() -> None:
    err = streamwrap.MissingDependencyError("openai", "openai")
    assert 'pip install "streamwrap[openai]"' in str(err)
