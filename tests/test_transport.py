"""The wire of live requests (`summarize._live.transport`) and the gate in front of it
(the width of `summarize._live.pacer.Pacer`).

A small aiohttp server in the test process stands for the endpoint (or a proxy) and
keeps what it was sent: the transport is real HTTP, so headers, auth, proxies and
timeouts are checked as an endpoint sees them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from summarize._errors import ConfigError
from summarize._live.pacer import Pacer
from summarize._live.retries import RetryPolicy, StatusError, completion_body, retry_after
from summarize._live.transport import (
    ChatRoute,
    EndpointUnreachable,
    HTTPTransport,
    Reply,
    chat_route,
)
from summarize._settings import EndpointSettings


class Endpoint:
    """Answers every POST with `status` and `payload` after `delay` seconds."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.status = 200
        self.payload: Any = {"choices": [{"message": {"content": "hi"}}]}
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        seen = {"path": request.path, "host": request.host, "headers": dict(request.headers)}
        self.seen.append({**seen, "body": body})
        await asyncio.sleep(self.delay)
        return web.json_response(self.payload, status=self.status)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    served = Endpoint()
    app = web.Application()
    app.router.add_post("/{tail:.*}", served.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield served, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def tls_endpoint(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An https endpoint whose certificate a test CA signed; the CA's PEM file."""
    authority = trustme.CA()
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(served)
    app = web.Application()
    app.router.add_post("/{tail:.*}", Endpoint().handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=served).start()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    yield f"https://127.0.0.1:{runner.addresses[0][1]}", pem
    await runner.cleanup()


def transport(base_url: str, **settings: Any) -> tuple[ChatRoute, HTTPTransport]:
    """The route to an endpoint at `base_url` and a transport of its own, as the client
    builds them."""
    endpoint = EndpointSettings(base_url=base_url, model="m", **settings)
    route = chat_route(endpoint)
    return route, HTTPTransport(route.url, timeout=endpoint.timeout)


async def post_once(base_url: str, body: bytes = b"{}", **settings: Any) -> Reply:
    """One request through a transport of its own, closed afterwards."""
    route, wire = transport(base_url, **settings)
    try:
        return await wire.send(route.request(body))
    finally:
        await wire.aclose()


async def test_the_key_goes_as_a_bearer_token_with_the_body_as_sent(
    endpoint: tuple[Endpoint, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, url = endpoint
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    reply = await post_once(f"{url}/v1/", b'{"model":"m"}', api_key="sk-test")
    assert reply.status == 200 and served.seen[0]["path"] == "/v1/chat/completions"
    headers = served.seen[0]["headers"]
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Content-Type"] == "application/json"
    assert headers["OpenAI-Organization"] == "org-1"
    assert served.seen[0]["body"] == b'{"model":"m"}'


async def test_credentials_in_the_url_go_as_basic_auth_and_not_in_the_url(
    endpoint: tuple[Endpoint, str],
) -> None:
    served, url = endpoint
    base_url = url.replace("http://", "http://user:s3cret@") + "/v1"
    await post_once(base_url, api_key="sk-test")
    assert served.seen[0]["headers"]["Authorization"] == "Basic dXNlcjpzM2NyZXQ="
    assert "s3cret" not in str(transport(base_url)[0].url)


async def test_requests_go_through_the_proxy_the_environment_names(
    endpoint: tuple[Endpoint, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, proxy = endpoint
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    reply = await post_once("http://llm.example.invalid/v1")
    # The name never resolves: only the proxy could have answered.
    assert reply.status == 200 and served.seen[0]["host"] == "llm.example.invalid"


async def test_an_endpoint_that_is_not_listening_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(EndpointUnreachable):
        await post_once(f"http://127.0.0.1:{port}/v1")


async def test_no_answer_within_the_timeout_is_unreachable_and_says_how_long(
    endpoint: tuple[Endpoint, str],
) -> None:
    served, url = endpoint
    served.delay = 2.0
    with pytest.raises(EndpointUnreachable, match=r"no answer within 0\.2 s"):
        await post_once(url, timeout=0.2)


async def test_an_error_status_says_what_the_endpoint_said(
    endpoint: tuple[Endpoint, str],
) -> None:
    served, url = endpoint
    served.status, served.payload = 400, {"error": {"message": "max_tokens is too large"}}
    reply = await post_once(url)
    with pytest.raises(StatusError, match=r"^HTTP 400: max_tokens is too large$"):
        completion_body(reply)


async def test_freed_slots_go_to_the_waiters_in_arrival_order() -> None:
    gate = Pacer(width=1)
    order: list[int] = []
    release = asyncio.Event()

    async def holder() -> None:
        await gate.enter()
        await release.wait()
        gate.leave()

    async def waiter(n: int) -> None:
        await gate.enter()
        order.append(n)
        assert gate.peak == 1
        gate.leave()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(waiter(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert order == []  # all five wait behind the holder
    release.set()
    await asyncio.gather(first, *waiters)
    assert order == [0, 1, 2, 3, 4] and gate.peak == 1


async def test_a_cancelled_waiter_gives_up_its_place_and_no_slot_is_lost() -> None:
    gate = Pacer(width=1)
    release = asyncio.Event()

    async def holder() -> None:
        await gate.enter()
        await release.wait()
        gate.leave()

    async def waiter() -> None:
        await gate.enter()
        gate.leave()

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled, kept = asyncio.create_task(waiter()), asyncio.create_task(waiter())
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, kept), timeout=1)
    assert cancelled.cancelled()
    await asyncio.wait_for(gate.enter(), timeout=1)  # the slot came back: in at once
    gate.leave()


@pytest.mark.parametrize("base_url", ["localhost:8000/v1", "ftp://host/v1", "/v1"])
def test_a_base_url_without_http_or_https_is_a_config_error(base_url: str) -> None:
    with pytest.raises(ConfigError, match="needs http:// or https://"):
        transport(base_url)


def test_a_key_with_a_line_ending_is_a_config_error_that_does_not_show_it() -> None:
    with pytest.raises(ConfigError, match="API key holds a control character") as raised:
        transport("http://127.0.0.1:1/v1", api_key="sk-secret\r")
    assert "sk-secret" not in str(raised.value)


async def test_a_proxy_given_as_host_and_port_is_read_as_http(
    endpoint: tuple[Endpoint, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, proxy = endpoint
    monkeypatch.setenv("HTTP_PROXY", proxy.removeprefix("http://"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    reply = await post_once("http://llm.example.invalid/v1")
    assert reply.status == 200 and served.seen[0]["host"] == "llm.example.invalid"


def test_a_redirect_is_a_config_error_naming_where_to() -> None:
    endpoint = EndpointSettings(base_url="http://llm.example/v1", model="m")
    moved = Reply(308, {"Location": "https://llm.example/v1/chat/completions"}, b"")
    error = RetryPolicy(endpoint, Pacer()).translate(StatusError(moved))
    assert isinstance(error, ConfigError)
    assert "redirects (HTTP 308) to https://llm.example/v1/chat/completions" in str(error)


@pytest.mark.parametrize("value", ["soon", "nan", "inf", "Mon, 99 Foo 2026"])
def test_an_unreadable_retry_after_leaves_the_wait_to_the_backoff(value: str) -> None:
    assert retry_after(StatusError(Reply(429, {"retry-after": value}, b""))) is None


async def test_https_trusts_the_ca_in_ssl_cert_file(
    tls_endpoint: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, pem = tls_endpoint
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    assert (await post_once(url)).status == 200


async def test_https_to_a_certificate_no_trusted_ca_signed_is_unreachable(
    tls_endpoint: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = tls_endpoint
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(EndpointUnreachable, match="certificate"):
        await post_once(url)


def test_an_ssl_cert_file_with_no_certificate_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(garbage))
    with pytest.raises(ConfigError, match=r"SSL_CERT_FILE .*ca\.pem: no certificate read"):
        transport("https://llm.example/v1")
    transport("http://localhost:8080/v1")  # plain http never reads it
