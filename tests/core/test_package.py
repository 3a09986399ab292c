"""The public surface: exports, import cost discipline, typing marker."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import streamwrap
from streamwrap._registry import _BUILTIN, resolve_model_type


def test_all_is_exact_and_importable() -> None:
    for name in streamwrap.__all__:
        assert hasattr(streamwrap, name), name
    public = {n for n in dir(streamwrap) if not n.startswith("_")}
    # Nothing public leaks in besides the declared API (submodules excepted).
    assert public - set(streamwrap.__all__) <= {"testing", "web", "providers", "annotations"}


def test_import_loads_no_provider_sdk_and_no_event_loop() -> None:
    code = (
        "import sys, streamwrap\n"
        "bad = [m for m in ('openai', 'httpx', 'httpx2', 'litellm', 'dashscope', 'google.genai', "
        "'ollama', 'xllamacpp', 'huggingface_hub', 'yaml', 'asyncio') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_import_loads_no_provider_module() -> None:
    code = (
        "import sys, streamwrap\n"
        "print(sorted(m for m in sys.modules if m.startswith(('streamwrap._providers', 'streamwrap.providers'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# The built-in wrapper classes: class name -> model_type, from the registry's import strings.
BUILTIN_WRAPPERS = {target.rpartition(":")[2]: model_type for model_type, target in _BUILTIN.items()}


def test_every_builtin_wrapper_class_is_exported() -> None:
    assert len(BUILTIN_WRAPPERS) == len(_BUILTIN) == 12
    for name, model_type in BUILTIN_WRAPPERS.items():
        assert name in streamwrap.__all__
        cls = getattr(streamwrap, name)
        assert cls is resolve_model_type(model_type)
        assert issubclass(cls, streamwrap.ModelWrapper) and cls.model_type == model_type
    assert streamwrap.OpenAIChatWrapper.__name__ == "OpenAIChatWrapper"
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchWrapper'"):
        streamwrap.NoSuchWrapper  # noqa: B018


def test_wrapper_classes_are_imported_when_first_named() -> None:
    code = """
import sys, streamwrap
from streamwrap._registry import register_model_type

def loaded():
    return sorted({m.split(".")[2] for m in sys.modules if m.startswith("streamwrap._providers.")})

print(loaded())
ollama = streamwrap.OllamaChatWrapper
print(loaded())
assert streamwrap.OllamaChatWrapper is ollama and "OllamaChatWrapper" in vars(streamwrap)
# The export is the built-in class, whatever is registered under its model_type.
register_model_type("openai_chat", ollama)
assert streamwrap.OpenAIChatWrapper.__name__ == "OpenAIChatWrapper"
namespace = {}
exec("from streamwrap import *", namespace)
print(sorted(name for name in namespace if name.endswith("Wrapper") and name != "ModelWrapper"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "['ollama']", str(sorted(BUILTIN_WRAPPERS))]


def test_type_checking_block_names_every_builtin_wrapper() -> None:
    # The `if TYPE_CHECKING:` imports of streamwrap/__init__.py, which type checkers and IDEs
    # read, are the registry's import strings, one for one.
    tree = ast.parse(Path(streamwrap.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
    )
    imported = {
        f"streamwrap.{node.module}:{alias.name}"
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert imported == set(_BUILTIN.values())


def test_mypy_sees_the_wrapper_classes(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy (a test dependency) is not installed")
    (tmp_path / "use.py").write_text(
        "import streamwrap\n"
        "from streamwrap import ZhipuAIChatWrapper\n"
        "reveal_type(streamwrap.OllamaChatWrapper('m').stream)\n"
        "reveal_type(ZhipuAIChatWrapper.model_type)\n"
        "wrapper: type[streamwrap.OpenAIChatWrapper] = ZhipuAIChatWrapper\n"
        "streamwrap.NoSuchWrapper\n"
    )
    root = str(Path(streamwrap.__file__).parent.parent)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull, "use.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": root},
    )
    lines = result.stdout.splitlines()
    # (mypy 1.18 says "builtins.bool", later versions "bool".)
    assert re.search(r'^use.py:3: note: Revealed type is "(builtins\.)?bool"$', result.stdout, re.M), (
        result.stdout
    )
    assert re.search(r'^use.py:4: note: Revealed type is "(builtins\.)?str"$', result.stdout, re.M), (
        result.stdout
    )
    # An unknown name is an error, not Any: the module's __getattr__ is hidden from mypy.
    assert [line for line in lines if ": error:" in line] == [
        'use.py:6: error: Module has no attribute "NoSuchWrapper"  [attr-defined]'
    ], result.stdout


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
