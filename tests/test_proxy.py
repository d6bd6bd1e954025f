"""A proxy from the environment is never used for this machine.

With `HTTP_PROXY` set and no `NO_PROXY` (a common corporate shell), requests to the
embedded server on 127.0.0.1 and its readiness probe must not go to the proxy: it
cannot reach this machine's server. The proxy here is dead (a closed port), so any
request sent to it fails at once.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from summarize._embedded.server import EmbeddedServer
from summarize._embedded.weights import ModelFile
from summarize._live.transport import HTTPTransport, Reply, chat_route
from summarize._settings import EndpointSettings

ROOT = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    proxy = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return proxy


@pytest.fixture
async def local_endpoint() -> AsyncIterator[int]:
    """An endpoint on 127.0.0.1 that answers every POST with 200; its port."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield runner.addresses[0][1]
    await runner.cleanup()


async def post(endpoint: EndpointSettings, body: bytes = b"{}") -> Reply:
    """One request to `endpoint` over the sockets of a transport of its own."""
    route = chat_route(endpoint)
    wire = HTTPTransport(route.url, timeout=endpoint.timeout)
    try:
        return await wire.send(route.request(body))
    finally:
        await wire.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost"])
async def test_a_local_endpoint_is_reached_directly_with_a_dead_proxy_set(
    dead_proxy: str, local_endpoint: int, host: str
) -> None:
    reply = await post(EndpointSettings(base_url=f"http://{host}:{local_endpoint}/v1", model="m"))
    assert reply.status == 200 and b"/v1/chat/completions" in reply.content


class FakeEmbeddedServer(EmbeddedServer):
    """The embedded server's start, probe and stop, around the fake OpenAI server
    (`python -m summarize.testing.server`) in place of llama.cpp's: the real model is slow."""

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "summarize.testing.server", "--port", str(self.port)]


async def test_the_embedded_server_starts_and_answers_with_a_dead_proxy_set(
    dead_proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUMMARIZE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    model = ModelFile(tmp_path / "fake.gguf", "0" * 64)
    # Before: the readiness probe went to the proxy and never saw the server.
    with FakeEmbeddedServer(model, startup_timeout=60) as server:
        reply = await post(server.endpoint(), b'{"model": "local", "messages": []}')
    assert reply.status in (200, 400)  # an answer from the server, not from a proxy
