"""The keys a model config dict accepts, their defaults, and their validation.

Kept apart from :mod:`._config` (which loads configs and names models) because the wrapper
validates its own options with them, and the wrapper sits below the config loader (config →
registry → wrapper): what both need lives below both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, Required, TypedDict

from ._errors import ConfigError
from ._sinks import Sink

if TYPE_CHECKING:
    from ._delivery import ResponseCallback

__all__ = ["DEFAULTS", "ModelConfig", "check_options", "suggest"]


class ModelConfig(TypedDict, total=False):
    """The keys a model config dict accepts (wrappers may accept a few more of their own)."""

    config_name: NotRequired[str]
    model_type: Required[str]
    model_name: Required[str]
    stream: bool
    api_key: str
    base_url: str
    client_args: dict[str, Any]
    generate_args: dict[str, Any]
    max_retries: int
    timeout: float
    first_token_timeout: float
    idle_timeout: float
    response_callback: ResponseCallback
    price_provider: str


# Documented defaults: generous, but finite, so that no stream can hang forever.
DEFAULTS: dict[str, Any] = {
    "stream": False,
    "max_retries": 2,
    "timeout": 60.0,
    "first_token_timeout": 300.0,
    "idle_timeout": 120.0,
}

_NUMBER = (int, float)
# key -> (accepted types, description used in messages)
_COMMON: dict[str, tuple[tuple[type, ...], str]] = {
    "config_name": ((str,), "a string"),
    "model_type": ((str,), "a string"),
    "model_name": ((str,), "a non-empty string"),
    "stream": ((bool,), "true or false"),
    "api_key": ((str,), "a string"),
    "base_url": ((str,), "a URL string"),
    "client_args": ((dict,), "a dict"),
    "generate_args": ((dict,), "a dict"),
    "max_retries": ((int,), "an integer >= 0"),
    "timeout": (_NUMBER, "a number of seconds > 0"),
    "first_token_timeout": (_NUMBER, "a number of seconds > 0"),
    "idle_timeout": (_NUMBER, "a number of seconds > 0"),
    # A function or a sink (the protocol is structural: anything with a `send` method).
    "response_callback": (
        (Callable, Sink),  # type: ignore[dict-item]
        "a callable or a sink (an object with `async def send(event)`)",
    ),
    # The genai-prices provider id whose prices apply (response.cost, usage_summary()).
    "price_provider": ((str,), "a provider id of genai-prices"),
}
_SECRET_KEYS = frozenset(("api_key",))
# Call parameters that people put at the top of a config; they belong in generate_args.
_GENERATE_ARGS_HINTS = frozenset(
    (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "stop",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "logprobs",
        "response_format",
        "tools",
        "tool_choice",
        "reasoning_effort",
        "thinking",
        "stream_options",
    )
)


def suggest(value: str, options: Sequence[str]) -> str | None:
    """The accepted spelling closest to ``value``: compared ignoring case and ``-``/``_``,
    and a unique accepted name that ``value`` begins (``"zhipu"`` → ``"zhipuai_chat"``)."""
    import difflib  # only on the error path

    def folded(text: str) -> str:
        return text.lower().replace("-", "_")

    by_folded = {folded(o): o for o in options}
    key = folded(value)
    if key in by_folded:
        return by_folded[key]
    starts = [o for f, o in by_folded.items() if len(key) >= 3 and f.startswith(key)]
    if len(starts) == 1:
        return starts[0]
    match = difflib.get_close_matches(key, list(by_folded), n=1, cutoff=0.6)
    return by_folded[match[0]] if match else None


def check_options(
    model_type: str,
    config_keys: Mapping[str, tuple[tuple[type, ...], str]],
    options: Mapping[str, Any],
    *,
    config_name: str | None = None,
) -> None:
    """Validate a wrapper's options (config keys other than ``model_type``): the common
    keys, and ``config_keys``, the wrapper's own (its ``ModelWrapper.config_keys``)."""
    accepted = {**_COMMON, **config_keys}
    value: Any
    for key, value in options.items():
        if not isinstance(key, str) or key not in accepted:
            call_parameter = key in _GENERATE_ARGS_HINTS
            raise ConfigError(
                f"unknown key {key!r} for model_type {model_type!r}."
                + (f" Call parameters such as {key!r} go in 'generate_args'." if call_parameter else ""),
                key=str(key),
                accepted=tuple(sorted(accepted)),
                suggestion=None if call_parameter else suggest(str(key), list(accepted)),
                config_name=config_name,
            )
        if value is None and key not in ("model_name", "model_type"):
            continue  # None means "use the default"
        types, description = accepted[key]
        # bool is an int in Python; a config that says max_retries: true is a mistake.
        is_bool_for_number = isinstance(value, bool) and bool not in types
        if not isinstance(value, types) or is_bool_for_number:
            shown = "" if key in _SECRET_KEYS else f" ({value!r})"
            raise ConfigError(
                f"{key!r} must be {description}, got {type(value).__name__}{shown}.",
                key=key,
                config_name=config_name,
            )
        value = options[key]  # (isinstance above narrowed it to `object` for the checker)
        if key == "model_name" and not value.strip():
            raise ConfigError("'model_name' must be a non-empty string.", key=key, config_name=config_name)
        if key == "max_retries" and value < 0:
            raise ConfigError(f"'max_retries' must be >= 0, got {value}.", key=key, config_name=config_name)
        if types is _NUMBER and not (value > 0 and math.isfinite(value)):
            raise ConfigError(
                f"{key!r} must be > 0 and finite, got {value}.", key=key, config_name=config_name
            )
        if key in ("client_args", "generate_args"):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise ConfigError(
                    f"{key!r} keys must be strings, got {bad[0]!r}.", key=key, config_name=config_name
                )
    if "model_name" not in options:
        raise ConfigError("'model_name' is required.", key="model_name", config_name=config_name)
