"""Typed, closed settings, resolved once at the edge.

Precedence, highest first: command-line flags, environment (`OPENAI_API_KEY`,
`OPENAI_BASE_URL`, `SUMMARIZE_MODEL`), the config file (`summarize.toml`, or
`[tool.summarize]` in `pyproject.toml`, in the working directory), defaults.
The API key is read from the environment only and never printed.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .errors import ConfigError
from .schema import Strategy

DEFAULT_OUTPUT = Path("outputs/summaries.jsonl")
DEFAULT_REMOTE_MODEL = "gpt-4o-mini"
CONFIG_FILE = "summarize.toml"
OPENAI_API_URL = "https://api.openai.com/v1"  # the SDK's default base URL


class EndpointSettings(BaseModel):
    """How to reach one OpenAI-compatible endpoint, and how hard to try."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_REMOTE_MODEL
    base_url: str | None = None
    api_key: SecretStr | None = Field(default=None, repr=False)
    model_label: str | None = None
    timeout: float = Field(default=120.0, gt=0)
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    extra_body: dict[str, float | int | str | bool] = Field(default_factory=dict)
    constrain_quotes: bool = False
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
    unknown = set(config) - _ENDPOINT_KEYS - _RUN_KEYS
    if unknown:
        raise ConfigError(f"{config_path}: unknown setting(s) {', '.join(sorted(unknown))}")
    given = {k: v for k, v in flags.items() if v is not None}
    endpoint: dict[str, Any] = {k: config[k] for k in _ENDPOINT_KEYS & set(config)}
    run: dict[str, Any] = {k: config[k] for k in _RUN_KEYS & set(config)}
    if env.get("OPENAI_BASE_URL"):
        endpoint["base_url"] = env["OPENAI_BASE_URL"]
    if env.get("SUMMARIZE_MODEL"):
        endpoint["model"] = env["SUMMARIZE_MODEL"]
    if env.get("OPENAI_API_KEY"):
        endpoint["api_key"] = env["OPENAI_API_KEY"]
    endpoint.update({k: v for k, v in given.items() if k in _ENDPOINT_KEYS})
    run.update({k: v for k, v in given.items() if k not in _ENDPOINT_KEYS})
    try:
        return RunSettings(endpoint=EndpointSettings(**endpoint), **run)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = f"{config_path}: " if config_path else ""
        name = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}{name}: {err['msg']}") from None


def wants_local(settings: RunSettings) -> bool:
    """The embedded model serves when asked, or when no endpoint and no key are set."""
    endpoint = settings.endpoint
    return settings.local or (endpoint.base_url is None and endpoint.api_key is None)


def without_credentials(url: str | None) -> str | None:
    """`https://user:secret@host/v1` -> `https://host/v1`: no secret reaches a file."""
    if url is None:
        return None
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def endpoint_identity(endpoint: EndpointSettings) -> tuple[str, str]:
    """Where requests go (the base URL, no credentials) and which key sends them.

    The key is named by a short hash, never by itself: enough to tell two keys
    (two projects) apart in a state file, nothing to reuse.
    """
    where = (without_credentials(endpoint.base_url) or OPENAI_API_URL).rstrip("/")
    secret = endpoint.api_key.get_secret_value() if endpoint.api_key else ""
    key = f"sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]}" if secret else "no key"
    return where, key
