"""Where the API key may go: a project file cannot send it to a host of its choosing,
no key crosses the network in plain http unasked, and no credential in a URL reaches
a file or a message.

A `summarize.toml` or `[tool.summarize]` may be a cloned paper repository's, not the
user's; flags and the environment are the user's own word (`summarize.settings`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from summarize._cli import cli
from summarize._errors import ConfigError
from summarize._settings import RunSettings, endpoint_identity, resolve_settings
from summarize._urls import urls_without_credentials, without_credentials
from summarize.testing.server import FakeOpenAI
from tests.conftest import FAKE_KEY, read_jsonl

KEY = {"OPENAI_API_KEY": FAKE_KEY}


def resolve(cwd: Path, env: dict[str, str], **flags: Any) -> RunSettings:
    return resolve_settings({"inputs": ("p.jsonl",), **flags}, env=env, cwd=cwd)


def project_file(cwd: Path, text: str, *, pyproject: bool = False) -> Path:
    if pyproject:
        path = cwd / "pyproject.toml"
        path.write_text(f'[project]\nname = "paper"\n\n[tool.summarize]\n{text}\n')
    else:
        path = cwd / "summarize.toml"
        path.write_text(text + "\n")
    return path


@pytest.mark.parametrize("pyproject", [False, True])
def test_a_base_url_from_a_project_file_gets_no_key_unless_the_file_names_it(
    tmp_path: Path, pyproject: bool
) -> None:
    path = project_file(tmp_path, 'base_url = "https://llm.example/v1"', pyproject=pyproject)
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, KEY)
    message = str(raised.value)
    assert message.startswith(f"{path}: base_url https://llm.example/v1 is set by this file")
    assert 'add api_key_env = "OPENAI_API_KEY"' in message and "\n" not in message
    assert FAKE_KEY not in message


def test_a_project_file_that_names_openais_own_url_sends_the_key_nowhere_new(
    tmp_path: Path,
) -> None:
    project_file(tmp_path, 'model = "gpt-4o-mini"\nbase_url = "https://api.openai.com/v1"')
    endpoint = resolve(tmp_path, KEY).endpoint
    assert endpoint.base_url == "https://api.openai.com/v1" and endpoint.api_key is not None


def test_a_project_file_that_names_the_key_variable_sends_that_key_there(tmp_path: Path) -> None:
    project_file(tmp_path, 'base_url = "https://llm.example/v1"\napi_key_env = "OPENAI_API_KEY"')
    endpoint = resolve(tmp_path, KEY).endpoint
    assert endpoint.base_url == "https://llm.example/v1"
    assert endpoint.api_key is not None and endpoint.api_key.get_secret_value() == FAKE_KEY


def test_the_named_variable_is_the_key_read_and_the_openai_key_is_left_alone(
    tmp_path: Path,
) -> None:
    project_file(tmp_path, 'base_url = "https://groq.example/v1"\napi_key_env = "GROQ_API_KEY"')
    endpoint = resolve(tmp_path, {**KEY, "GROQ_API_KEY": "gsk-groq"}).endpoint
    assert endpoint.api_key is not None and endpoint.api_key.get_secret_value() == "gsk-groq"


@pytest.mark.parametrize("name", ["AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "HOME", "API_KEY", 3])
def test_a_project_file_can_name_only_an_api_key_variable(tmp_path: Path, name: object) -> None:
    value = f'"{name}"' if isinstance(name, str) else str(name)
    project_file(tmp_path, f'base_url = "https://llm.example/v1"\napi_key_env = {value}')
    with pytest.raises(ConfigError, match="api_key_env must name an environment variable ending"):
        resolve(tmp_path, {**KEY, "AWS_SECRET_ACCESS_KEY": "aws", "GITHUB_TOKEN": "ghp"})


def test_a_named_variable_that_is_not_set_is_a_config_error(tmp_path: Path) -> None:
    path = project_file(tmp_path, 'base_url = "https://x.example/v1"\napi_key_env = "X_API_KEY"')
    with pytest.raises(ConfigError, match=f"^{path}: api_key_env names X_API_KEY, which is not"):
        resolve(tmp_path, KEY)


def test_a_base_url_from_a_project_file_with_no_key_in_the_environment_is_kept(
    tmp_path: Path,
) -> None:
    project_file(tmp_path, 'base_url = "http://gpu-box.lan:8000/v1"')
    endpoint = resolve(tmp_path, {}).endpoint
    assert endpoint.base_url == "http://gpu-box.lan:8000/v1" and endpoint.api_key is None


@pytest.mark.parametrize(
    ("flags", "env"),
    [({"base_url": "https://mine.example/v1"}, {}),
     ({}, {"OPENAI_BASE_URL": "https://mine.example/v1"})],
)  # fmt: skip
def test_a_base_url_the_user_gives_overrides_the_file_and_gets_the_key(
    tmp_path: Path, flags: dict[str, str], env: dict[str, str]
) -> None:
    project_file(tmp_path, 'base_url = "https://llm.example/v1"')
    endpoint = resolve(tmp_path, {**KEY, **env}, **flags).endpoint
    assert endpoint.base_url == "https://mine.example/v1" and endpoint.api_key is not None


def test_the_embedded_model_ignores_a_project_base_url_and_needs_no_key_rule(
    tmp_path: Path,
) -> None:
    project_file(tmp_path, 'base_url = "https://llm.example/v1"')
    assert resolve(tmp_path, KEY, local=True).local


@pytest.mark.parametrize(
    "source",
    [{"flags": {"base_url": "http://gpu-box.lan:8000/v1"}},
     {"env": {"OPENAI_BASE_URL": "http://10.1.2.3/v1"}},
     {"file": 'base_url = "http://llm.example/v1"\napi_key_env = "OPENAI_API_KEY"'}],
)  # fmt: skip
def test_a_key_over_plain_http_to_another_machine_is_refused(
    tmp_path: Path, source: dict[str, Any]
) -> None:
    if "file" in source:
        project_file(tmp_path, source["file"])
    env = {**KEY, **source.get("env", {})}
    with pytest.raises(ConfigError, match="is plain http to another machine") as raised:
        resolve(tmp_path, env, **source.get("flags", {}))
    assert "--allow-insecure-key" in str(raised.value) and FAKE_KEY not in str(raised.value)
    allowed = resolve(tmp_path, env, allow_insecure_key=True, **source.get("flags", {}))
    assert allowed.endpoint.api_key is not None


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/v1", "http://127.1.2.3/v1", "http://localhost:11434/v1",
            "http://LOCALHOST./v1", "http://[::1]:8000/v1", "https://llm.example/v1"],
)  # fmt: skip
def test_a_key_over_https_or_to_this_machine_needs_no_flag(tmp_path: Path, url: str) -> None:
    assert resolve(tmp_path, KEY, base_url=url).endpoint.api_key is not None


def test_credentials_in_a_plain_http_url_to_another_machine_are_refused_too(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="plain http to another machine") as raised:
        resolve(tmp_path, {}, base_url="http://user:hunter2@llm.example/v1")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("query", ["key=qs-secret", "api_key=qs-secret", "token=qs-secret"])
def test_a_key_in_a_plain_http_urls_query_to_another_machine_is_refused(
    tmp_path: Path, query: str
) -> None:
    with pytest.raises(ConfigError, match="plain http to another machine") as raised:
        resolve(tmp_path, {}, base_url=f"http://llm.example/v1?{query}")
    assert "qs-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("flags", "env"),
    [({"base_url": "https://api.openai.com/v1"}, {}),
     ({}, {"OPENAI_BASE_URL": "https://mine.example/v1"})],
)  # fmt: skip
def test_a_project_files_key_variable_never_picks_the_key_for_the_users_own_base_url(
    tmp_path: Path, flags: dict[str, str], env: dict[str, str]
) -> None:
    project_file(tmp_path, 'api_key_env = "ANTHROPIC_API_KEY"')
    secrets = {**KEY, "ANTHROPIC_API_KEY": "sk-ant-secret", **env}
    endpoint = resolve(tmp_path, secrets, **flags).endpoint
    assert endpoint.api_key is not None and endpoint.api_key.get_secret_value() == FAKE_KEY


def test_plain_http_to_another_machine_without_a_key_is_allowed(tmp_path: Path) -> None:
    assert resolve(tmp_path, {}, base_url="http://gpu-box.lan/v1").endpoint.api_key is None


def test_a_project_file_cannot_allow_an_insecure_key(tmp_path: Path) -> None:
    path = project_file(tmp_path, "allow_insecure_key = true")
    with pytest.raises(ConfigError, match=f"^{path}: unknown setting.*allow_insecure_key"):
        resolve(tmp_path, KEY)


# Through the command line, against a real server that wants the key.


@pytest.fixture
def keyed_server() -> Any:
    with FakeOpenAI(require_key=FAKE_KEY) as fake:
        yield fake


def cli_in(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=KEY, catch_exceptions=False)


def test_run_sends_no_key_to_a_base_url_a_cloned_repository_set(
    keyed_server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    project_file(tmp_path, f'base_url = "{keyed_server.base_url}"')
    result = cli_in("run", str(papers), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2, result.output
    assert "summarize.toml: base_url" in result.output and len(result.output.splitlines()) == 1
    assert keyed_server.stats.requests == 0 and not (tmp_path / "o.jsonl").exists()
    project_file(tmp_path, f'base_url = "{keyed_server.base_url}"\napi_key_env = "OPENAI_API_KEY"')
    named = cli_in("run", str(papers), "-o", str(tmp_path / "o.jsonl"))
    assert named.exit_code == 0, named.output
    assert len(read_jsonl(tmp_path / "o.jsonl")) == 3 and keyed_server.stats.unauthorized == 0


@pytest.mark.parametrize("command", [["submit", "papers.jsonl"], ["status"], ["collect"],
                                     ["cancel"]])  # fmt: skip
def test_every_batch_command_resolves_the_key_by_the_same_rule(
    keyed_server: FakeOpenAI, papers: Path, tmp_path: Path, command: list[str]
) -> None:
    project_file(tmp_path, f'base_url = "{keyed_server.base_url}"')
    result = cli_in("batch", *command, "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2, result.output
    assert "summarize.toml: base_url" in result.output
    assert keyed_server.stats.files_uploaded == 0 and keyed_server.stats.statuses.total() == 0


@pytest.mark.parametrize("command", [["run", "papers.jsonl", "--dry-run"], ["batch", "status"]])
def test_the_insecure_key_flag_lets_the_key_go_over_plain_http(
    papers: Path, command: list[str]
) -> None:
    url = ["--base-url", "http://llm.example.invalid/v1"]
    refused = cli_in(*command, *url)
    assert refused.exit_code == 2 and "--allow-insecure-key" in refused.output
    allowed = cli_in(*command, *url, "--allow-insecure-key")
    assert allowed.exit_code == 0, allowed.output


# Credentials in URLs: userinfo and query parameters that carry secrets.


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:s3cret@llm.example/v1", "https://llm.example/v1"),
        ("https://llm.example/v1?key=s3cret", "https://llm.example/v1"),
        ("https://llm.example/v1?api_key=s3cret&api-version=2024-06-01",
         "https://llm.example/v1?api-version=2024-06-01"),
        ("https://llm.example/v1?api-version=1&access_token=s3cret", "https://llm.example/v1?api-version=1"),
        ("https://llm.example/v1?token=s3cret", "https://llm.example/v1"),
        ("https://llm.example/v1?X-Amz-Signature=s3cret&sig=s3cret", "https://llm.example/v1"),
        ("https://llm.example/v1?APIKEY=s3cret", "https://llm.example/v1"),
        ("https://llm.example/v1?api%5Fkey=s3cret", "https://llm.example/v1"),
        ("https://llm.example/v1?password=s3cret&secret=s3cret", "https://llm.example/v1"),
        ("https://llm.example/v1#access_token=s3cret", "https://llm.example/v1"),
        ("http://u:p@[::1/v1?key=s3cret", "http://[::1/v1"),  # not parsed
    ],
)  # fmt: skip
def test_without_credentials_strips_userinfo_and_secret_query_parameters(
    url: str, clean: str
) -> None:
    assert without_credentials(url) == clean


@pytest.mark.parametrize(
    "url", ["https://api.openai.com/v1", "HTTPS://Host.example:8443/v1/", "http://127.0.0.1:8/v1?api-version=1"]
)  # fmt: skip
def test_a_url_with_no_secret_is_named_as_given(url: str) -> None:
    assert without_credentials(url) == url


def test_every_url_in_a_message_is_stripped() -> None:
    text = "400, message='Bad', url=URL('https://h.example/v1/chat/completions?key=s3cret')"
    assert urls_without_credentials(text) == (
        "400, message='Bad', url=URL('https://h.example/v1/chat/completions')"
    )


def test_a_state_files_endpoint_name_holds_no_key_from_the_query() -> None:
    from summarize._settings import EndpointSettings  # noqa: PLC0415

    endpoint = EndpointSettings(base_url="https://h.example/v1?key=s3cret", api_key="sk-x")
    where, key = endpoint_identity(endpoint)
    assert where == "https://h.example/v1" and "s3cret" not in key and "sk-x" not in key


def test_a_redirect_is_named_without_the_credentials_in_its_location() -> None:
    from summarize._live.pacer import Pacer  # noqa: PLC0415
    from summarize._live.retries import RetryPolicy, StatusError  # noqa: PLC0415
    from summarize._live.transport import Reply  # noqa: PLC0415
    from summarize._settings import EndpointSettings  # noqa: PLC0415

    endpoint = EndpointSettings(base_url="https://llm.example/v1?key=s3cret", model="m")
    moved = Reply(307, {"Location": "https://cdn.example/v1/chat?token=s3cret&region=eu"}, b"")
    error = RetryPolicy(endpoint, Pacer()).translate(StatusError(moved))
    assert str(error) == (
        "https://llm.example/v1 redirects (HTTP 307) to https://cdn.example/v1/chat?region=eu: "
        "use that address as --base-url"
    )


def test_a_key_in_the_base_urls_query_reaches_the_server_but_no_file_or_message(
    server: FakeOpenAI, papers: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o.jsonl"
    secret = "qs-secret-DO-NOT-LEAK"
    result = CliRunner().invoke(
        cli, ["run", str(papers), "-o", str(out), "--base-url", f"{server.base_url}?key={secret}"],
        env=KEY, catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out)) == 3
    assert secret not in result.output
    for path in tmp_path.iterdir():
        if path.is_file():
            assert secret not in path.read_text(encoding="utf-8", errors="replace"), path


def test_an_unreachable_endpoint_with_a_key_in_its_query_is_named_without_it(
    papers: Path, tmp_path: Path
) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = "qs-secret-DO-NOT-LEAK"
    result = CliRunner().invoke(
        cli, ["run", str(papers), "-o", str(tmp_path / "o.jsonl"), "--max-retries", "0",
              "--base-url", f"http://127.0.0.1:{port}/v1?access_token={secret}"],
        env=KEY, catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert f"http://127.0.0.1:{port}/v1 cannot be reached" in result.output
    assert secret not in result.output
