"""Config dicts (AgentScope style): their keys, their validation, and the named-model registry."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, Required, TypedDict

import orjson

from ._errors import ConfigError, MissingDependencyError
from ._registry import model_types, resolve_model_type
from ._sink import Sink

if TYPE_CHECKING:
    from ._delivery import ResponseCallback
    from ._wrapper import ModelWrapper

__all__ = [
    "DEFAULTS",
    "ModelConfig",
    "check_options",
    "get_model",
    "load_model",
    "load_model_configs",
    "registered_models",
]


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
}
_SECRET_KEYS = frozenset(("api_key",))
# Call parameters that people put at the top of a config; they belong in generate_args.
_GENERATE_ARGS_HINTS = frozenset(
    (
        "temperature", "top_p", "top_k", "min_p", "max_tokens", "max_completion_tokens", "max_output_tokens",
        "stop", "seed", "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "logprobs",
        "response_format", "tools", "tool_choice", "reasoning_effort", "thinking", "stream_options",
    )
)


def _suggest(value: str, options: Sequence[str]) -> str | None:
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
    wrapper_cls: type[ModelWrapper], options: Mapping[str, Any], *, config_name: str | None = None
) -> None:
    """Validate a wrapper's options (config keys other than ``model_type``)."""
    accepted = {**_COMMON, **wrapper_cls.config_keys}
    value: Any
    for key, value in options.items():
        if not isinstance(key, str) or key not in accepted:
            call_parameter = key in _GENERATE_ARGS_HINTS
            raise ConfigError(
                f"unknown key {key!r} for model_type {wrapper_cls.model_type!r}."
                + (f" Call parameters such as {key!r} go in 'generate_args'." if call_parameter else ""),
                key=str(key),
                accepted=tuple(sorted(accepted)),
                suggestion=None if call_parameter else _suggest(str(key), list(accepted)),
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
            raise ConfigError(f"{key!r} must be > 0 and finite, got {value}.", key=key, config_name=config_name)
        if key in ("client_args", "generate_args"):
            bad = [k for k in value if not isinstance(k, str)]
            if bad:
                raise ConfigError(f"{key!r} keys must be strings, got {bad[0]!r}.", key=key, config_name=config_name)
    if "model_name" not in options:
        raise ConfigError("'model_name' is required.", key="model_name", config_name=config_name)


# Named models, as AgentScope's ``config_name`` registers them.
_models: dict[str, ModelWrapper] = {}


def load_model(config: Mapping[str, Any]) -> ModelWrapper:
    """Build a model wrapper from a config dict; register it under ``config_name`` if given.

    Raises :class:`ConfigError` naming the bad key, what is accepted, and the closest
    accepted spelling when the bad one looks like a typo.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a model config must be a dict, got {type(config).__name__}.")
    name = config.get("config_name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError("'config_name' must be a non-empty string.", key="config_name")
    model_type = config.get("model_type")
    if model_type is None:
        raise ConfigError(
            "'model_type' is required.", key="model_type", accepted=model_types(), config_name=name
        )
    if not isinstance(model_type, str):
        raise ConfigError(
            f"'model_type' must be a string, got {type(model_type).__name__}.",
            key="model_type",
            accepted=model_types(),
            config_name=name,
        )
    try:
        cls = resolve_model_type(model_type)
    except KeyError:
        raise ConfigError(
            f"unknown model_type {model_type!r}.",
            key="model_type",
            accepted=model_types(),
            suggestion=_suggest(model_type, model_types()),
            config_name=name,
        ) from None
    options = {k: v for k, v in config.items() if k != "model_type"}
    check_options(cls, options, config_name=name)
    wrapper = cls(**options)
    if name:
        _models[name] = wrapper
    return wrapper


def load_model_configs(source: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[ModelWrapper]:
    """Load several model configs from a JSON or YAML file, or from a list of dicts.

    Every config is validated before any is registered, so a bad file changes nothing.
    """
    if isinstance(source, (str, os.PathLike)):
        configs = _read_config_file(os.fspath(source))
    else:
        configs = source
    if isinstance(configs, Mapping):
        configs = [configs]
    if not isinstance(configs, Sequence) or isinstance(configs, (str, bytes)):
        raise ConfigError(f"model configs must be a list of dicts, got {type(configs).__name__}.")
    names = [c.get("config_name") for c in configs if isinstance(c, Mapping)]
    dupes = sorted({n for n in names if n is not None and names.count(n) > 1})
    if dupes:
        raise ConfigError(f"config_name {dupes[0]!r} appears more than once.", key="config_name")
    # Validate all first (building a wrapper is cheap and does no I/O), then register.
    built: list[tuple[str | None, ModelWrapper]] = []
    saved = dict(_models)
    try:
        for config in configs:
            built.append((config.get("config_name") if isinstance(config, Mapping) else None, load_model(config)))
    except BaseException:
        _models.clear()
        _models.update(saved)
        raise
    return [w for _, w in built]


def _read_config_file(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read model config file {path!r}: {exc.strerror}.") from None
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError("pyyaml", "yaml") from None
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path!r} is not valid YAML: {exc}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path!r} is not valid JSON: {exc}") from None


def get_model(config_name: str) -> ModelWrapper:
    """The model registered under ``config_name`` by :func:`load_model` or :func:`load_model_configs`."""
    try:
        return _models[config_name]
    except KeyError:
        names = tuple(sorted(_models))
        raise ConfigError(
            f"no model config named {config_name!r} has been loaded.",
            key="config_name",
            accepted=names,
            suggestion=_suggest(config_name, names),
        ) from None


def registered_models() -> dict[str, ModelWrapper]:
    """A copy of the name → model registry."""
    return dict(_models)
