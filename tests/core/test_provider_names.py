"""No module outside ``streamwrap/_providers/`` names a provider.

The core reaches a provider only through the registry's import strings, and the
``streamwrap`` command through ``_providers/_default_model``. This test reads the source
with ``ast`` and fails on any import, string constant or identifier that names a provider;
docstrings and comments may mention one as an example (they are not code).

The vocabulary is read from the providers themselves, so that a new provider is covered
without editing this test: the package names under ``_providers/``, the built-in model
types (``_registry``), the first word of the environment variables the wrappers read their
keys and URLs from (``api_key_env``, ``base_url_env``: ``OPENAI``, ``GOOGLE``, ``ZAI``),
and the SDKs only providers require (``MissingDependencyError("<sdk>", ...)``).

Not checked: ``streamwrap/testing/``, the provider emulator, whose dialects imitate each
provider's wire format by name (and which imports nothing of the library).
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import streamwrap

PACKAGE = Path(streamwrap.__file__).resolve().parent
PROVIDERS = PACKAGE / "_providers"
UNCHECKED = (PROVIDERS, PACKAGE / "testing")


# What may name a provider outside _providers/, and why. An allowance no longer used fails
# the test too (test_every_allowance_is_still_needed): remove it then.
def _public_wrapper_exports() -> dict[tuple[str, str], str]:
    # The public API exports every built-in wrapper class by name (imported when first
    # named, through the registry); its TYPE_CHECKING block names their modules for type
    # checkers. Exactly the registry's built-ins, no more (tests/core/test_package.py checks
    # that the block equals the registry's table).
    from streamwrap._registry import _BUILTIN

    allowed: dict[tuple[str, str], str] = {}
    for target in _BUILTIN.values():
        module, _, cls = target.partition(":")
        allowed["streamwrap/__init__.py", module] = "public export"
        allowed["streamwrap/__init__.py", cls] = "public export"
    return allowed


# Written out by hand, each still needed (test_every_allowance_is_still_needed).
HAND_ALLOWED: dict[tuple[str, str], str] = {
    # OpenAI's message format is the lingua franca of tool calls: a public method.
    ("streamwrap/_tools.py", "to_openai"): "public method",
    ("streamwrap/_response.py", "to_openai"): "public method",
}
# (A generated allowance may find nothing: "LocalChatWrapper" names no provider.)
ALLOWED = {**_public_wrapper_exports(), **HAND_ALLOWED}


@dataclass(frozen=True)
class Vocabulary:
    """Lower-case words that name a provider, and the built-in model types."""

    words: frozenset[str]
    model_types: frozenset[str]

    def names_provider(self, text: str) -> bool:
        lower = text.lower()
        # A provider's package (its name starts with a letter; _providers/_default_model
        # and the like are the layer's own modules), or a built-in model type.
        if re.search(r"streamwrap\._providers\.[a-z]", lower) or any(t in lower for t in self.model_types):
            return True
        # Long words anywhere ("OpenAIChatWrapper", "xllamacpp"); short ones ("zai") only
        # as whole words, where they cannot be part of an unrelated one.
        tokens = set(re.split(r"[^a-z0-9]+", lower))
        return any(w in lower if len(w) >= 5 else w in tokens for w in self.words)


def _sources(root: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path, ast.parse(path.read_text("utf-8"), str(path))


def _constant_str(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _required_sdk(node: ast.AST) -> str | None:
    """The SDK of ``MissingDependencyError("<sdk>", ...)``."""
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "MissingDependencyError" and node.args:
        return _constant_str(node.args[0])
    return None


@functools.cache
def read_vocabulary() -> Vocabulary:
    packages = {p.parent.name for p in PROVIDERS.glob("*/__init__.py")}
    registry = ast.parse((PACKAGE / "_registry.py").read_text("utf-8"))
    model_types: set[str] = set()
    for node in ast.walk(registry):
        if isinstance(node, ast.AnnAssign | ast.Assign) and "_BUILTIN" in ast.unparse(node).split("=")[0]:
            assert isinstance(node.value, ast.Dict)
            model_types.update(t for k in node.value.keys if k is not None and (t := _constant_str(k)))
    key_env: set[str] = set()  # the api_key_env and base_url_env of every wrapper
    provider_sdks: set[str] = set()
    for _, tree in _sources(PROVIDERS):
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
                target = ast.unparse(node.target if isinstance(node, ast.AnnAssign) else node.targets[0])
                if target in ("api_key_env", "base_url_env") and isinstance(node.value, ast.Tuple):
                    key_env.update(s for e in node.value.elts if (s := _constant_str(e)))
            elif sdk := _required_sdk(node):
                provider_sdks.add(sdk)
    shared_sdks = {  # required outside _providers too (httpx, by the transport): not a provider's
        sdk
        for path, tree in _sources(PACKAGE)
        if PROVIDERS not in path.parents
        for node in ast.walk(tree)
        if (sdk := _required_sdk(node))
    }
    # A variable's first word names its provider (GOOGLE_API_KEY, ZAI_API_KEY). Of the other
    # variables providers read, those with a provider's word are covered by it (OLLAMA_MODEL),
    # and the rest are not a provider's (STREAMWRAP_CACHE_DIR, XDG_CACHE_HOME).
    words = packages | (provider_sdks - shared_sdks) | {v.split("_")[0] for v in key_env}
    return Vocabulary(frozenset(w.lower() for w in words), frozenset(model_types))


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r}"


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that stand alone as statements: docstrings, and the
    rare string used as a comment."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and _constant_str(node.value) is not None
    }


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def find_provider_names(source: str, path: str, vocabulary: Vocabulary) -> list[Finding]:
    """Every place in ``source`` (the module at ``path``, relative to the repository) whose
    code names a provider."""
    tree = ast.parse(source, path)
    module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    is_package = path.endswith("__init__.py")
    skip = _docstrings(tree)
    if path == "streamwrap/_registry.py":
        # The registry's import strings: the one way the core names a provider.
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign | ast.Assign) and "_BUILTIN" in ast.unparse(node).split("=")[0]:
                skip.update(id(n) for n in ast.walk(node))
    found: list[Finding] = []

    def check(node: ast.AST, text: str | None) -> None:
        if text and vocabulary.names_provider(text):
            found.append(Finding(path, getattr(node, "lineno", 0), text))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                check(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            if vocabulary.names_provider(base):
                check(node, base)
            else:  # (`from ._providers import openai`, `from x import OpenAIChatWrapper`)
                for alias in node.names:
                    check(node, f"{base}.{alias.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            check(node, node.value)
        elif isinstance(node, ast.Name):
            check(node, node.id)
        elif isinstance(node, ast.Attribute):
            check(node, node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            check(node, node.name)
        elif isinstance(node, ast.arg | ast.keyword):
            check(node, node.arg)
        elif isinstance(node, ast.alias) and node.asname:
            check(node, node.asname)
    return sorted(found, key=lambda f: f.line)


def _checked_modules() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(root == path or root in path.parents for root in UNCHECKED):
            continue
        yield path.relative_to(PACKAGE.parent).as_posix(), path.read_text("utf-8")


def _all_findings() -> list[Finding]:
    vocabulary = read_vocabulary()
    return [f for rel, source in _checked_modules() for f in find_provider_names(source, rel, vocabulary)]


def test_no_module_outside_providers_names_a_provider() -> None:
    findings = [f for f in _all_findings() if (f.path, f.text) not in ALLOWED]
    assert not findings, (
        "these modules name a provider; move the provider's part into streamwrap/_providers/ "
        "(the core reaches a provider through the registry, a hook or _providers/_default_model):\n"
        + "\n".join(map(str, findings))
    )


def test_every_allowance_is_still_needed() -> None:
    used = {(f.path, f.text) for f in _all_findings()}
    assert set(HAND_ALLOWED) <= used, f"allowed but no longer found (remove them): {set(HAND_ALLOWED) - used}"


def test_the_vocabulary_is_read_from_the_providers() -> None:
    vocabulary = read_vocabulary()
    assert {"openai", "dashscope", "gemini", "ollama", "litellm", "llamacpp"} <= vocabulary.words
    assert {"google", "zhipuai", "zai", "xllamacpp"} <= vocabulary.words  # env variables, SDKs
    assert {"openai_chat", "local_chat", "zhipuai_chat"} <= vocabulary.model_types
    assert "httpx" not in vocabulary.words  # the transport's too, not a provider's
    assert "streamwrap" not in vocabulary.words and "xdg" not in vocabulary.words


SAMPLE = '''"""Docstrings may say OpenAI, Ollama, GEMINI_API_KEY or local_chat."""
# So may comments: from ._providers.openai import x; "OPENAI_API_KEY"
import os

import xllamacpp

from ._providers import _default_model, openai
from ._providers.llamacpp._engine import shutdown
from ._sinks import ConsoleSink as OllamaSink

KEY = os.environ.get("ZAI_API_KEY")
WHERE = f"Ollama at {KEY}"
TYPE = {"model_type": "local_chat"}
HELP = "any OpenAI-compatible server"
PATH = "streamwrap._providers.whatever:Wrapper"


def probe_gemini(dashscope_key: str) -> None:
    """Function docstrings too: dashscope."""
    shutdown(litellm=1)
'''


def test_the_check_finds_what_names_a_provider_and_not_docstrings_or_comments() -> None:
    found = {
        (f.line, f.text) for f in find_provider_names(SAMPLE, "streamwrap/_sample.py", read_vocabulary())
    }
    assert found == {
        (5, "xllamacpp"),
        (7, "streamwrap._providers.openai"),
        (8, "streamwrap._providers.llamacpp._engine"),
        (9, "OllamaSink"),
        (11, "ZAI_API_KEY"),
        (12, "Ollama at "),
        (13, "local_chat"),
        (14, "any OpenAI-compatible server"),
        (15, "streamwrap._providers.whatever:Wrapper"),
        (18, "probe_gemini"),
        (18, "dashscope_key"),
        (20, "litellm"),
    }


def test_the_check_knows_the_registry_import_strings_from_other_strings() -> None:
    source = '_BUILTIN: dict[str, str] = {"openai_chat": "streamwrap._providers.openai._wrapper:W"}\nX = "ollama"\n'
    found = find_provider_names(source, "streamwrap/_registry.py", read_vocabulary())
    assert [(f.line, f.text) for f in found] == [(2, "ollama")]
    found = find_provider_names(source, "streamwrap/_config.py", read_vocabulary())
    assert sorted((f.line, f.text) for f in found) == [
        (1, "openai_chat"),
        (1, "streamwrap._providers.openai._wrapper:W"),
        (2, "ollama"),
    ]
