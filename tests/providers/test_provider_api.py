"""The public extension API, ``streamwrap.providers``, and the proof that it suffices.

``tests/providers/example_provider`` is a provider package of its own (``example_chat``: OpenAI-style
chat completions sent with httpx), built only from ``streamwrap.providers`` and the public
names of ``streamwrap``. It is installed for real, by pip from its pyproject.toml, into a
directory of its own, once per session; a subprocess with that directory on its path then
runs ``example_provider_contract.py``, where ``load_model`` finds the provider through its
entry point and it streams through the emulator and passes the fault matrix.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import streamwrap
import streamwrap.providers

TESTS = Path(__file__).parent
EXAMPLE = TESTS / "example_provider"
PACKAGE = EXAMPLE / "streamwrap_example_provider"
CONTRACT = TESTS / "example_provider_contract.py"
ROOT = Path(streamwrap.__file__).parent.parent


def test_all_is_exact_and_importable() -> None:
    for name in streamwrap.providers.__all__:
        assert hasattr(streamwrap.providers, name), name
    public = {name for name in dir(streamwrap.providers) if not name.startswith("_")}
    assert public - set(streamwrap.providers.__all__) <= {"annotations"}


def test_the_names_are_the_cores_own() -> None:
    # Re-exports, not copies: an isinstance check or a subclass works across both paths.
    from streamwrap._transport._upstream import BodyUpstream
    from streamwrap._wrapper import ModelWrapper

    assert streamwrap.providers.ModelWrapper is ModelWrapper is streamwrap.ModelWrapper
    assert streamwrap.providers.BodyUpstream is BodyUpstream
    assert streamwrap.providers.TextDelta is streamwrap.TextDelta
    assert streamwrap.providers.Usage is streamwrap.Usage
    assert streamwrap.providers.register_model_type is streamwrap.register_model_type


def test_importing_it_imports_no_http_library_and_no_provider() -> None:
    code = (
        "import sys, streamwrap.providers\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'httpx2', 'httpcore', 'openai')"
        " or m.startswith('streamwrap._providers')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import in ``path``."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def test_the_example_imports_only_the_public_api() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert {path.name for path in sources} == {"__init__.py", "wire.py", "wrapper.py"}
    public = {
        "streamwrap": set(streamwrap.__all__),
        "streamwrap.providers": set(streamwrap.providers.__all__),
    }
    used: set[str] = set()
    for path in sources:
        for module, names in _imports(path):
            if module.split(".")[0] != "streamwrap":
                continue
            assert module in public, f"{path.name} imports {module}, not a public module"
            assert set(names) <= public[module], f"{path.name} imports private names from {module}: {names}"
            used.add(module)
    assert used == {"streamwrap", "streamwrap.providers"}


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed (wheel built from its pyproject.toml, entry point and
    all) into a directory of its own, as ``pip install`` installs any package."""
    site = tmp_path_factory.mktemp("example-provider-site")
    # Without build isolation when hatchling (the backend) is here already: nothing is
    # fetched. Otherwise pip fetches it, as for any source install.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-input",
            "--disable-pip-version-check",
            "--target",
            str(site),
            *isolation,
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and not isolation and re.search(r"hatchling", result.stderr, re.I):
        pytest.skip(
            f"hatchling is not installed and pip could not fetch it to build the example: {result.stderr[-500:]}"
        )
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def test_the_installed_example_declares_its_entry_point(example_site: Path) -> None:
    (dist_info,) = example_site.glob("streamwrap_example_provider-*.dist-info")
    entry_points = (dist_info / "entry_points.txt").read_text()
    assert "[streamwrap.model_types]" in entry_points
    assert "example_chat = streamwrap_example_provider:ExampleChatWrapper" in entry_points
    assert (example_site / "streamwrap_example_provider" / "wire.py").is_file()


def test_the_installed_example_passes_the_provider_contract(example_site: Path) -> None:
    env = {
        **os.environ,
        # The installed package first; the source tree of streamwrap under test next.
        "PYTHONPATH": os.pathsep.join([str(example_site), str(ROOT)]),
        "EXAMPLE_PROVIDER_SITE": str(example_site),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            str(CONTRACT),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 20, summary
    assert not re.search(r"skipped|xfail|deselected", summary), summary


def test_the_example_type_checks_strictly(tmp_path: Path) -> None:
    # The extension API is typed well enough for a provider package under mypy --strict.
    pytest.importorskip("mypy", reason="mypy (a test dependency) is not installed")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            os.devnull,
            "-p",
            "streamwrap_example_provider",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)])},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_guide_quotes_the_example_verbatim() -> None:
    # docs/writing-a-provider.md walks through the example: each of its Python and TOML
    # snippets is a run of whole lines of the example package or of its tests, as they are.
    guide = (ROOT / "docs" / "writing-a-provider.md").read_text()
    snippets = re.findall(r"^```(?:python|toml)\n(.*?)^```$", guide, re.S | re.M)
    assert len(snippets) >= 10
    sources = [*sorted(PACKAGE.glob("*.py")), EXAMPLE / "pyproject.toml", CONTRACT]
    texts = ["\n" + path.read_text() for path in sources]
    for snippet in snippets:
        assert any("\n" + snippet in text for text in texts), f"not in the example as it is:\n{snippet}"
