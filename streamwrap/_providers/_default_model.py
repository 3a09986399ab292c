"""The model the ``streamwrap`` command uses when it is told none, and the words it has for
the providers: the one place outside a provider's own package that names several, so that
the command itself (``streamwrap._cli``) names none.

The order of preference: an API key in the environment (:data:`ENV_PROVIDERS`), else an
Ollama server that answers at once, else the embedded local model (with the ``local``
extra installed); else :data:`NO_MODEL_HELP` says how to choose one. ``streamwrap pull``
fetches the local model (:data:`DEFAULT_MODEL`, or another) ahead of time.
"""

from __future__ import annotations

import os
from typing import Any, TextIO

from .._config import load_model
from .._wrapper import ModelWrapper
from .llamacpp._model_source import DEFAULT_MODEL, resolve_model

__all__ = [
    "BASE_URL_HELP",
    "CHOICE_HELP",
    "COMMAND_LINE_MODEL_TYPE",
    "DEFAULT_MODEL",
    "ENV_PROVIDERS",
    "LOCAL_MODEL_TYPE",
    "NO_MODEL_HELP",
    "fetch_if_missing",
    "model_from_environment",
    "resolve_model",
]

# Providers the CLI can pick from the environment, in order of preference: the variable
# that must be set, and the config it implies (STREAMWRAP_MODEL overrides the model name).
# After these: a reachable Ollama server, then the embedded local model.
ENV_PROVIDERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("OPENAI_API_KEY", {"model_type": "openai_chat", "model_name": "gpt-4o-mini"}),
    ("DASHSCOPE_API_KEY", {"model_type": "dashscope_chat", "model_name": "qwen-plus"}),
    ("GEMINI_API_KEY", {"model_type": "gemini_chat", "model_name": "gemini-2.5-flash"}),
    ("GOOGLE_API_KEY", {"model_type": "gemini_chat", "model_name": "gemini-2.5-flash"}),
    ("ANTHROPIC_API_KEY", {"model_type": "anthropic_chat", "model_name": "claude-haiku-4-5"}),
    ("ZHIPUAI_API_KEY", {"model_type": "zhipuai_chat", "model_name": "glm-4.7-flash"}),
    ("ZAI_API_KEY", {"model_type": "zhipuai_chat", "model_name": "glm-4.7-flash"}),
    # With AZURE_OPENAI_ENDPOINT (its absence is a ConfigError that says so); the model
    # name is the deployment's, so STREAMWRAP_MODEL names yours if it is not this one.
    ("AZURE_OPENAI_API_KEY", {"model_type": "azure_openai_chat", "model_name": "gpt-4o-mini"}),
)
_KEY_NAMES = "OPENAI_API_KEY, DASHSCOPE_API_KEY, GEMINI_API_KEY, ANTHROPIC_API_KEY, ZHIPUAI_API_KEY or AZURE_OPENAI_API_KEY"
#: The model_type of the local models ``streamwrap pull`` fetches.
LOCAL_MODEL_TYPE = "local_chat"
# The embedded default: SmolLM2-135M-Instruct in-process. A CLI reply is capped, so that a
# tiny model that rambles does not keep the terminal for a minute.
_LOCAL_CONFIG: dict[str, Any] = {
    "model_type": LOCAL_MODEL_TYPE,
    "model_name": "SmolLM2-135M-Instruct",
    "generate_args": {"max_tokens": 512},
}
# `streamwrap chat` runs one stream: one slot instead of llama.cpp's four saves their KV
# cache (46 MB each for SmolLM2 at 2048 tokens) and some of the load. `serve` keeps four.
_LOCAL_CHAT_CONFIG: dict[str, Any] = {**_LOCAL_CONFIG, "n_parallel": 1}
# Probing Ollama must not slow down a CLI that falls back to the local model.
_OLLAMA_PROBE_SECONDS = 0.3

#: The model_type of ``--model-name`` or ``--base-url`` given without ``--model-type``.
COMMAND_LINE_MODEL_TYPE = "openai_chat"
#: The help of ``--base-url``, which is for COMMAND_LINE_MODEL_TYPE's servers by default.
BASE_URL_HELP = "the server's base URL (any OpenAI-compatible server)"
#: How a model is chosen when none is named (the help of the model options).
CHOICE_HELP = "default: an API key in the environment, else a running Ollama, else the local model"

NO_MODEL_HELP = """\
streamwrap: no model is configured. Choose one of:
  pip install 'streamwrap[local]'   (runs SmolLM2-135M-Instruct in-process: no key; its 98 MB
                                     are fetched on first use, or ahead with `streamwrap pull`)
  export OPENAI_API_KEY=...   (uses openai_chat; likewise DASHSCOPE_API_KEY, GEMINI_API_KEY,
                               ANTHROPIC_API_KEY, ZHIPUAI_API_KEY, AZURE_OPENAI_API_KEY with
                               AZURE_OPENAI_ENDPOINT; STREAMWRAP_MODEL picks the model, or the
                               Azure deployment)
  start Ollama                (OLLAMA_HOST, OLLAMA_MODEL)
  streamwrap chat --config models.json --name NAME "prompt"
  streamwrap chat --model-type openai_chat --model-name MODEL --base-url http://127.0.0.1:8000/v1 "prompt"
"""


def model_from_environment(stderr: TextIO, *, chat: bool) -> tuple[ModelWrapper, str] | None:
    """An API key in the environment, else a running Ollama, else the embedded local model:
    the model and where it came from (for the status line), or ``None`` when there is none.
    ``chat``: for ``streamwrap chat`` (one stream at a time), rather than ``serve``."""
    chosen = os.environ.get("STREAMWRAP_MODEL")
    for variable, config in ENV_PROVIDERS:
        if os.environ.get(variable):
            return load_model({**config, "model_name": chosen or config["model_name"]}), f"${variable}"
    from .ollama._probe import probe

    ollama = probe(_OLLAMA_PROBE_SECONDS)
    if ollama is not None:
        base_url, model_name = ollama
        return (
            load_model({"model_type": "ollama_chat", "model_name": chosen or model_name}),
            f"Ollama at {base_url}",
        )
    from .llamacpp._wrapper import embedded_model_path, local_runtime_installed

    if local_runtime_installed():
        if embedded_model_path() is None:
            # First use: fetched now, in view (98 MB), rather than inside load_model in silence.
            print(
                f"streamwrap: no provider is configured: using the local model {DEFAULT_MODEL}, "
                "not fetched yet",
                file=stderr,
                flush=True,
            )
            resolve_model(DEFAULT_MODEL, progress=stderr)
        return (
            load_model(_LOCAL_CHAT_CONFIG if chat else _LOCAL_CONFIG),
            f"in-process; set {_KEY_NAMES}, or start Ollama, to use a provider",
        )
    return None


def fetch_if_missing(model: ModelWrapper, progress: TextIO) -> None:
    """A local model not fetched yet: fetched now, in view (``progress``), rather than in
    silence inside ``prepare()``."""
    if model.model_type == LOCAL_MODEL_TYPE and getattr(model, "model_path", "") is None:
        resolve_model(model.model_name, progress=progress)
