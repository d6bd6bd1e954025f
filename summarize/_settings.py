"""Typed, closed settings, resolved once at the edge.

Precedence, highest first: command-line flags, environment (`OPENAI_API_KEY`,
`OPENAI_BASE_URL`, `SUMMARIZE_MODEL`), the config file (`summarize.toml`, or
`[tool.summarize]` in `pyproject.toml`, in the working directory), defaults.
The API key is read from the environment only and never printed.

The config file may be a cloned repository's, not the user's: a `base_url` it sets
gets the environment's key only if it also names the key's variable (`api_key_env`,
a name ending in `_API_KEY`). A key never goes over plain http to another machine
unless the user passes `--allow-insecure-key`. Flags and the environment are the
user's own word.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ._errors import ConfigError
from ._schema import Strategy
from ._urls import is_loopback, without_credentials

DEFAULT_OUTPUT = Path("outputs/summaries.jsonl")
DEFAULT_REMOTE_MODEL = "gpt-4o-mini"
# Room for one answer. The longest of the 39 gold summaries, as tool arguments, is 2,076
# characters: 519 tokens at 4 a token, 557-585 by the Llama 3, GPT-2 and Qwen2
# tokenizers; the longest the schema allows is ~3,950 characters. 2,048 is 3.5x the one
# and 2x the other. A cut-off answer is asked again with more room (`_live.client`).
DEFAULT_MAX_TOKENS = 2048
CONFIG_FILE = "summarize.toml"
OPENAI_API_URL = "https://api.openai.com/v1"  # the SDK's default base URL
API_KEY_ENV = "OPENAI_API_KEY"


class EndpointSettings(BaseModel):
    """How to reach one OpenAI-compatible endpoint, and how hard to try."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_REMOTE_MODEL
    base_url: str | None = None
    api_key: SecretStr | None = Field(default=None, repr=False)
    model_label: str | None = None
    timeout: float = Field(default=120.0, gt=0)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=DEFAULT_MAX_TOKENS, gt=0)
    extra_body: dict[str, float | int | str | bool] = Field(default_factory=dict)
    constrain_quotes: bool = False
    # A re-ask sends the rejected answer back with its faults (True), or asks again with
    # only the faults named (False): a small model shown its own answer repeats it.
    reask_with_answer: bool = True
    max_retries: int = Field(default=6, ge=0, le=50)
    max_reasks: int = Field(default=2, ge=0, le=10)
    max_backoff: float = Field(default=60.0, gt=0)

    @property
    def recorded_model(self) -> str:
        """The model name lines carry: `model_label` if set, else the `model` sent."""
        return self.model_label or self.model

    def sampling(self) -> dict[str, Any]:
        """How every request samples: the temperature, and the token cap when one is set."""
        options: dict[str, Any] = {"temperature": self.temperature}
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        return options


class RunSettings(BaseModel):
    """Everything one `summarize run` needs, checked before any work starts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: tuple[str, ...]
    output: Path = DEFAULT_OUTPUT
    endpoint: EndpointSettings = EndpointSettings()
    local: bool = False
    model_file: Path | None = None
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    max_cost: float | None = Field(default=None, gt=0)
    max_tokens_total: int | None = Field(default=None, gt=0)
    prices: Path | None = None
    limit: int | None = Field(default=None, ge=0)
    force: bool = False
    strict: bool = False
    prompt: Path | None = None
    # None: the bundled prompt that suits the model (extractive for a local GGUF).
    strategy: Strategy | None = None


# Keys a config file may set, and the settings section they belong to.
_ENDPOINT_KEYS = set(EndpointSettings.model_fields) - {"api_key", "model_label"}
_RUN_KEYS = {
    "output", "concurrency", "rpm", "tpm", "max_cost", "max_tokens_total", "prices",
    "limit", "strict", "prompt", "local", "model_file", "strategy",
}  # fmt: skip
# Read while resolving, never stored: which variable holds the key for the file's base_url.
_KEY_ENV_SETTING = "api_key_env"
# Only a variable that holds an API key: a file that names one cannot send other secrets.
_KEY_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*_API_KEY")


def read_config_file(cwd: Path) -> tuple[dict[str, Any], Path | None]:
    """The `[tool.summarize]` table or `summarize.toml` in `cwd`, if any."""
    own = cwd / CONFIG_FILE
    if own.is_file():
        return _load_toml(own), own
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        table = _load_toml(pyproject).get("tool", {}).get("summarize")
        if isinstance(table, dict):
            return table, pyproject
    return {}, None


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def resolve_settings(
    flags: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    cwd: Path,
) -> RunSettings:
    """Merge flags, environment, config file and defaults into `RunSettings`.

    `flags` holds only what the user gave on the command line (None = not given).
    """
    config, config_path = read_config_file(cwd)
    unknown = set(config) - _ENDPOINT_KEYS - _RUN_KEYS - {_KEY_ENV_SETTING}
    if unknown:
        raise ConfigError(f"{config_path}: unknown setting(s) {', '.join(sorted(unknown))}")
    given = {k: v for k, v in flags.items() if v is not None}
    allow_insecure_key = bool(given.pop("allow_insecure_key", False))
    source = _base_url_source(given, env, config, config_path)
    # The file's `api_key_env` names the key for the file's own base URL only: a base URL
    # the user gave gets the user's key, whatever a cloned repository's file says.
    file_sets_url = source[1] is not None
    key_env = _key_env(config, config_path) if file_sets_url else API_KEY_ENV
    endpoint: dict[str, Any] = {k: config[k] for k in _ENDPOINT_KEYS & set(config)}
    run: dict[str, Any] = {k: config[k] for k in _RUN_KEYS & set(config)}
    if env.get("OPENAI_BASE_URL"):
        endpoint["base_url"] = env["OPENAI_BASE_URL"]
    if env.get("SUMMARIZE_MODEL"):
        endpoint["model"] = env["SUMMARIZE_MODEL"]
    if env.get(key_env):
        endpoint["api_key"] = env[key_env]
    endpoint.update({k: v for k, v in given.items() if k in _ENDPOINT_KEYS})
    run.update({k: v for k, v in given.items() if k not in _ENDPOINT_KEYS})
    try:
        settings = RunSettings(endpoint=EndpointSettings(**endpoint), **run)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = f"{config_path}: " if config_path else ""
        name = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}{name}: {err['msg']}") from None
    if not settings.local:  # the embedded model is sent no key
        named = config_path if file_sets_url and _KEY_ENV_SETTING in config else None
        _check_key_route(settings.endpoint, source, named=named,
                         key_env=key_env, allow_insecure=allow_insecure_key)  # fmt: skip
    return settings


def _key_env(config: Mapping[str, Any], config_path: Path | None) -> str:
    name = config.get(_KEY_ENV_SETTING, API_KEY_ENV)
    if not isinstance(name, str) or not _KEY_ENV_NAME.fullmatch(name):
        raise ConfigError(f"{config_path}: {_KEY_ENV_SETTING} must name an environment "
                          f"variable ending in _API_KEY, not {name!r}")  # fmt: skip
    return name


def _base_url_source(
    given: Mapping[str, Any],
    env: Mapping[str, str],
    config: Mapping[str, Any],
    config_path: Path | None,
) -> tuple[str, Path | None]:
    """Who set the base URL: a flag, the environment, the config file, or nobody (OpenAI's)."""
    if "base_url" in given:
        return "--base-url", None
    if env.get("OPENAI_BASE_URL"):
        return "OPENAI_BASE_URL", None
    if "base_url" in config and not _is_openai(config["base_url"]):
        return f"{config_path}: base_url", config_path
    return "the default base URL", None


def _is_openai(url: object) -> bool:
    """Where the key goes with no base URL at all: a file that names it sends it nowhere new."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError:
        return False
    return parts is not None and parts.scheme == "https" and parts.hostname == "api.openai.com"


def _check_key_route(
    endpoint: EndpointSettings,
    source: tuple[str, Path | None],
    *,
    named: Path | None,
    key_env: str,
    allow_insecure: bool,
) -> None:
    """Refuse to send the key where the user did not say to send it (see the module doc).

    `source` says who set the base URL (and the config file, if it did); `named` is the
    config file that names the key's variable, if one does."""
    said_by, from_file = source
    where = without_credentials(endpoint.base_url)
    if named is not None and endpoint.api_key is None:
        raise ConfigError(f"{named}: {_KEY_ENV_SETTING} names {key_env}, "
                          "which is not set in the environment")  # fmt: skip
    if from_file is not None and endpoint.api_key is not None and named is None:
        raise ConfigError(
            f"{from_file}: base_url {where} is set by this file, which does not name the key "
            f'to send there: add {_KEY_ENV_SETTING} = "{key_env}" to it if that host should '
            f"get {key_env}, or give --base-url yourself"
        )
    if allow_insecure or endpoint.base_url is None:
        return
    try:
        parts = urlsplit(endpoint.base_url)
    except ValueError:
        return  # not a URL: the transport says so
    # A key in the URL itself (`user:key@`, `?key=`) crosses the network as well.
    secret = endpoint.api_key is not None or without_credentials(endpoint.base_url) != (
        endpoint.base_url
    )
    if secret and parts.scheme.lower() == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{said_by} {where} is plain http to another machine, so the API key would "
            "cross the network unencrypted: use https://, or pass --allow-insecure-key"
        )


def wants_local(settings: RunSettings) -> bool:
    """The embedded model serves when asked, or when no endpoint and no key are set."""
    endpoint = settings.endpoint
    return settings.local or (endpoint.base_url is None and endpoint.api_key is None)


def endpoint_identity(endpoint: EndpointSettings) -> tuple[str, str]:
    """Where requests go (the base URL, no credentials) and which key sends them.

    The key is named by a short hash, never by itself: enough to tell two keys
    (two projects) apart in a state file, nothing to reuse.
    """
    where = (without_credentials(endpoint.base_url) or OPENAI_API_URL).rstrip("/")
    secret = endpoint.api_key.get_secret_value() if endpoint.api_key else ""
    key = f"sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]}" if secret else "no key"
    return where, key
