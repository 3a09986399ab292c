"""Config dicts (AgentScope style) loaded into wrappers, and the named-model registry.

The keys themselves, their defaults and their validation are in :mod:`._config_keys`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ._config_keys import check_options, suggest
from ._errors import ConfigError, MissingDependencyError
from ._registry import model_types, resolve_model_type

if TYPE_CHECKING:
    from ._wrapper import ModelWrapper

__all__ = [
    "get_model",
    "load_model",
    "load_model_configs",
    "registered_models",
]


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
            suggestion=suggest(model_type, model_types()),
            config_name=name,
        ) from None
    options = {k: v for k, v in config.items() if k != "model_type"}
    check_options(cls.model_type, cls.config_keys, options, config_name=name)
    wrapper = cls(**options)
    if name:
        _models[name] = wrapper
    return wrapper


def load_model_configs(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
) -> list[ModelWrapper]:
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
            built.append(
                (config.get("config_name") if isinstance(config, Mapping) else None, load_model(config))
            )
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
            suggestion=suggest(config_name, names),
        ) from None


def registered_models() -> dict[str, ModelWrapper]:
    """A copy of the name → model registry."""
    return dict(_models)
