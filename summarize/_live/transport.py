"""The wire for live requests: JSON bytes posted to one endpoint's chat completions.

The OpenAI protocol is one POST with a bearer key, so the hot path does not need
the SDK's per-call machinery (request options, header and URL building, response
wrappers: about 3 ms of CPU a request). `aiohttp` with one keep-alive pool posts
prebuilt bytes for about 0.4 ms (`../shared/notes/client-cpu.md`). The SDK stays
where it earns its cost: the Batch and Files APIs.

The transport is injected, as in httpx (`Client(transport=...)`): the client builds
each `Request` (`ChatRoute`: the URL and headers of one endpoint, checked once) and
hands it to an `AsyncTransport`. `HTTPTransport` sends it over sockets;
`summarize.testing.MockTransport` answers it in-process. What comes back is a `Reply`,
or `EndpointUnreachable` when no HTTP answer came (refused, dropped, timed out).
Judging a status is `retries`' job, not this one's.
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

import aiohttp
import yarl

from .._errors import ConfigError, error_line
from .._settings import OPENAI_API_URL, EndpointSettings
from .._urls import is_loopback, urls_without_credentials, without_credentials

# Optional OpenAI headers the SDK reads from the environment; forwarded the same way.
_ENV_HEADERS = {"OPENAI_ORG_ID": "OpenAI-Organization", "OPENAI_PROJECT_ID": "OpenAI-Project"}


@dataclass(frozen=True, slots=True)
class Request:
    """One POST of a chat-completions body: where it goes, with which headers."""

    url: yarl.URL
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, whatever its status."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def text(self, limit: int = 200) -> str:
        """The start of the body as text, for error messages."""
        return self.content[:limit].decode("utf-8", errors="replace")


class EndpointUnreachable(Exception):
    """No HTTP answer: the connection was refused, dropped or timed out."""


class AsyncTransport(Protocol):
    """What sends a `Request` and returns its `Reply`, whatever its status, or raises
    `EndpointUnreachable` when no answer came."""

    async def send(self, request: Request) -> Reply:
        """Send one request."""
        ...

    async def aclose(self) -> None:
        """Release what the transport holds (connections)."""
        ...


@dataclass(frozen=True, slots=True)
class ChatRoute:
    """One endpoint's `{base_url}/chat/completions` and the headers every request carries."""

    url: yarl.URL
    headers: Mapping[str, str]

    def request(self, content: bytes) -> Request:
        """`content` as a request to this route."""
        return Request(self.url, self.headers, content)


def chat_route(endpoint: EndpointSettings) -> ChatRoute:
    """The route to `endpoint`; `ConfigError` for a URL or a header no request could carry."""
    base = endpoint.base_url or OPENAI_API_URL
    url = _completions_url(base)
    if url.scheme not in ("http", "https") or not url.host:
        where = without_credentials(base)
        raise ConfigError(f"--base-url {where!r} needs http:// or https:// and a host")
    headers = _headers(endpoint, os.environ)
    if url.user is not None:
        # As httpx does: credentials in the URL are sent as basic auth, not the key.
        pair = f"{url.user}:{url.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    for name, value in headers.items():
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            what = "the API key" if name == "Authorization" else f"the {name} header"
            raise ConfigError(f"{what} holds a control character (a line ending?)")
    return ChatRoute(url.with_user(None), headers)


class HTTPTransport:
    """Sends requests to one endpoint over sockets: one keep-alive pool, the proxy the
    environment names for `url`, and TLS where it is spoken."""

    def __init__(self, url: yarl.URL, *, timeout: float | None) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._proxy = _proxy_for(url)
        # Loading the certificate store takes ~30 ms: done here, not in the first
        # request (which holds up a run's first wave), and only where TLS is spoken.
        tls = url.scheme == "https" or (self._proxy or "").lower().startswith("https:")
        self._tls: ssl.SSLContext | bool = _tls() if tls else True
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop that runs the requests.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # The pacer's width bounds requests in flight; a second cap here would hide it.
                connector=aiohttp.TCPConnector(limit=0, ssl=self._tls),
                timeout=self._timeout,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def send(self, request: Request) -> Reply:
        """Send one request; the answer whatever its status, or `EndpointUnreachable`."""
        try:
            async with self._pool().post(
                request.url,
                data=request.content,
                headers=request.headers,
                proxy=self._proxy,
                allow_redirects=False,
            ) as response:
                content = await response.read()
                return Reply(response.status, response.headers, content)
        except TimeoutError as exc:
            raise EndpointUnreachable(f"no answer within {self._timeout.total:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            # Some of aiohttp's messages hold the URL (or the proxy's), query and all.
            raise EndpointUnreachable(urls_without_credentials(error_line(exc))) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _completions_url(base: str) -> yarl.URL:
    """`{base}/chat/completions`, keeping the base URL's query (`?api-version=`, `?key=`)."""
    root, _, query = base.partition("#")[0].partition("?")
    return yarl.URL(root.rstrip("/") + "/chat/completions" + (f"?{query}" if query else ""))


def _headers(endpoint: EndpointSettings, env: Mapping[str, str]) -> dict[str, str]:
    key = endpoint.api_key.get_secret_value() if endpoint.api_key else "unused"
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"summarize/{_version()}",
    }
    headers.update({name: env[var] for var, name in _ENV_HEADERS.items() if env.get(var)})
    return headers


def _version() -> str:
    try:
        return metadata.version("summarize")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "dev"


def _tls() -> ssl.SSLContext:
    """Certificates as the SDK's transport found them: `SSL_CERT_FILE`, `SSL_CERT_DIR`,
    else the system's store (where an internal or inspecting proxy's CA is installed)."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and Path(cafile).is_file():
        try:
            return ssl.create_default_context(cafile=cafile)
        except ssl.SSLError as exc:
            raise ConfigError(f"SSL_CERT_FILE {cafile}: no certificate read from it "
                              f"({exc.reason or exc})") from exc  # fmt: skip
    if capath and Path(capath).is_dir():
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context()


def _proxy_for(url: yarl.URL) -> str | None:
    """The proxy `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` name for `url`, unless `NO_PROXY`
    exempts it or it is this machine (a proxy cannot reach the embedded server on
    127.0.0.1, and a local server needs none); `host:port` is read as
    `http://host:port`, as httpx reads it.

    Read once: aiohttp's `trust_env` reads the environment (and ~/.netrc) again in a
    worker thread on every request, and the thread hand-offs stall the event loop.
    """
    if is_loopback(url.host) or urllib.request.proxy_bypass(url.host or ""):
        return None
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and "://" not in proxy:
        proxy = f"http://{proxy}"
    return proxy or None
