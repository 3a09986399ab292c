"""Whether an Ollama server is running here: the ``streamwrap`` command's default model
looks for one (see ``_providers/_default_model``)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from ..._errors import StreamwrapError
from ._wrapper import parse_ollama_host

__all__ = ["probe"]


def probe(timeout: float) -> tuple[str, str] | None:
    """(base URL, model) of an Ollama server that answers within ``timeout`` seconds, or
    ``None``.

    The server is ``$OLLAMA_HOST``'s (default ``127.0.0.1:11434``); the model is
    ``$OLLAMA_MODEL``, else the first one the server has pulled.
    """
    try:
        base_url = parse_ollama_host(os.environ.get("OLLAMA_HOST"))
    except StreamwrapError:
        return None
    # No proxy: Ollama is usually on this machine, and a proxy would only add delay.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(base_url + "/api/tags", timeout=timeout) as reply:
            tags = json.loads(reply.read())
    except (OSError, ValueError):
        return None
    wanted = os.environ.get("OLLAMA_MODEL")
    if wanted:
        return base_url, wanted
    models = tags.get("models") if isinstance(tags, dict) else None
    for model in models if isinstance(models, list) else ():
        name = model.get("name") or model.get("model") if isinstance(model, dict) else None
        if isinstance(name, str) and name:
            return base_url, name
    return None  # a server with no model pulled cannot answer
