"""The wire for live requests: JSON bytes posted to one endpoint's chat completions.

The OpenAI protocol is one POST with a bearer key, so the hot path does not need
the SDK's per-call machinery (request options, header and URL building, response
wrappers: about 3 ms of CPU a request). `aiohttp` with one keep-alive pool posts
prebuilt bytes for about 0.4 ms (`../shared/notes/client-cpu.md`). The SDK stays
where it earns its cost: the Batch and Files APIs.

What comes back is a `Reply`, or `EndpointUnreachable` when no HTTP answer came
(refused, dropped, timed out). Judging a status is `faults`' job, not this one's.
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata

import aiohttp
import yarl

from ..errors import error_line
from ..settings import OPENAI_API_URL, EndpointSettings

# Optional OpenAI headers the SDK reads from the environment; forwarded the same way.
_ENV_HEADERS = {"OPENAI_ORG_ID": "OpenAI-Organization", "OPENAI_PROJECT_ID": "OpenAI-Project"}


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


class Transport:
    """Posts request bodies to `{base_url}/chat/completions` over one connection pool."""

    def __init__(self, endpoint: EndpointSettings) -> None:
        url = yarl.URL((endpoint.base_url or OPENAI_API_URL).rstrip("/") + "/chat/completions")
        self.url = url.with_user(None)
        self._timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
        self._headers = _headers(endpoint, os.environ)
        if url.user is not None:
            # As httpx does: credentials in the URL are sent as basic auth, not the key.
            pair = f"{url.user}:{url.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self._proxy = _proxy_for(self.url)
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop that runs the requests.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # The runner's gate bounds requests in flight; a second cap here would hide it.
                connector=aiohttp.TCPConnector(limit=0, ssl=_tls()),
                headers=self._headers,
                timeout=self._timeout,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def post(self, body: bytes) -> Reply:
        """Send one body; the answer whatever its status, or `EndpointUnreachable`."""
        try:
            async with self._pool().post(
                self.url, data=body, proxy=self._proxy, allow_redirects=False
            ) as response:
                content = await response.read()
                return Reply(response.status, response.headers, content)
        except TimeoutError as exc:
            raise EndpointUnreachable(f"no answer within {self._timeout.total:g} s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise EndpointUnreachable(error_line(exc)) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


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
    """Certificates from certifi when it is there (as the SDK's httpx does), else the system's."""
    try:
        import certifi  # noqa: PLC0415 - installed with openai, but not ours to require

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


def _proxy_for(url: yarl.URL) -> str | None:
    """The proxy `HTTPS_PROXY`/`HTTP_PROXY` name for `url`, unless `NO_PROXY` exempts it.

    Read once: aiohttp's `trust_env` reads the environment (and ~/.netrc) again in a
    worker thread on every request, and the thread hand-offs stall the event loop.
    """
    if urllib.request.proxy_bypass(url.host or ""):
        return None
    return urllib.request.getproxies().get(url.scheme)
