"""The server: settings, the background thread and its event loop, the routes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType
from typing import ClassVar

from aiohttp import web
from aiohttp.typedefs import Handler

from .._answers import DEFAULT_MODEL, default_responder
from ._batches import BatchRoutes
from ._faults import FaultPlan, Responder

_HELD_ROUTES = ("/v1/files", "/v1/batches", "/files", "/batches")
_CHAT_ROUTES = ("/v1/chat/completions", "/chat/completions")


class FakeOpenAI(BatchRoutes):
    """An OpenAI-compatible chat-completions and Batch API server in a background thread.

    Settings are attributes, safe to change between phases of a test (`latency`,
    `jitter`, `retry_after`, `limit_headers`, `responder`, `require_key`, `faults`,
    `rps_limit`, `batch_polls`). With `limit_headers`, answers carry OpenAI's
    `x-ratelimit-*-requests` headers (the limit per minute) when `rps_limit` is set.
    The rate limit reads `clock` (`time.monotonic`; set it before `rps_limit` to a fake
    one, to test the limit without waiting on the real clock).
    """

    # How long `stop` lets requests it has cancelled, then aiohttp's own shutdown, take to
    # end; set a longer one on an instance to tell a cancelled request from a waited one.
    STOP_GRACE: ClassVar[float] = 1.0

    def __init__(
        self,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        rps_limit: float | None = None,
        retry_after: float | None = 1.0,
        limit_headers: bool = True,
        faults: FaultPlan | None = None,
        responder: Responder | None = None,
        model: str = DEFAULT_MODEL,
        require_key: str | None = None,
        hang_seconds: float = 3600.0,
        batch_polls: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if batch_polls < 1:
            raise ValueError("batch_polls must be at least 1")
        super().__init__(seed=seed)
        self.latency = latency
        self.jitter = jitter
        self.retry_after = retry_after
        self.limit_headers = limit_headers
        self.faults = faults if faults is not None else FaultPlan()
        self.responder: Responder = responder or default_responder
        self.model = model
        self.require_key = require_key
        self.hang_seconds = hang_seconds
        self.batch_polls = batch_polls
        self.lose_create_responses = 0
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.set_rate_limit(rps_limit)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        # Files and Batch API replies still to make before they are held (see `hold_replies`).
        self._hold_after: int | None = None
        self._hold_chat = False
        self._held = 0
        self._released: asyncio.Event | None = None  # set by the next release, on the loop

    # ----------------------------------------------------------------- public API

    @property
    def port(self) -> int:
        """The port the server listens on (after `start`)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `openai.OpenAI(base_url=...)`."""
        return f"{self.url}/v1"

    def hold_replies(self, after: int = 1, *, chat: bool = False) -> None:
        """Hold the reply to the `after`-th Files or Batch API call from now (with `chat`:
        chat completion, instead), and to every later one, until `release_replies`: the
        call's work is done, its reply is not sent.

        A client killed (or interrupted) while `held_replies` > 0 is stopped mid-work at a
        point the test chose, however fast or slow the machine is.
        """
        if after < 1:
            raise ValueError("after must be at least 1")
        with self._lock:
            self._hold_after = after
            self._hold_chat = chat

    def release_replies(self) -> None:
        """Send the held replies (to whoever is still listening); hold no more."""
        with self._lock:
            self._hold_after = None
            released, self._released = self._released, None
        if released is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(released.set)

    @property
    def held_replies(self) -> int:
        """How many replies `hold_replies` is holding now."""
        with self._lock:
            return self._held

    # ----------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 5.0) -> FakeOpenAI:
        """Bind a port and serve in a background thread; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._ready.clear()
        self._startup_error = None
        thread = threading.Thread(
            target=self._run, args=(sock,), name=f"FakeOpenAI:{self._port}", daemon=True
        )
        self._thread = thread
        thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("the fake server did not start in time")
        if self._startup_error is not None:
            error = self._startup_error
            self.stop()
            raise error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel requests in progress, close every connection and join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        self.release_replies()
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("the fake server did not stop in time")
        self._thread = None
        self._loop = None
        self._stopping = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeOpenAI:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as exc:  # noqa: BLE001 - reported to start(), which raises it
            if not self._ready.is_set():
                self._startup_error = exc
        finally:
            sock.close()
            try:
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
                self._ready.set()

    async def _serve(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        # Batch input files run to 200 MB at OpenAI; aiohttp refuses bodies over 1 MB by default.
        app = web.Application(client_max_size=256 * 1024 * 1024, middlewares=[self._holding])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        for prefix in ("/v1", ""):
            app.router.add_post(f"{prefix}/files", self._upload_file)
            app.router.add_get(f"{prefix}/files/{{file_id}}", self._retrieve_file)
            app.router.add_get(f"{prefix}/files/{{file_id}}/content", self._file_content)
            app.router.add_post(f"{prefix}/batches", self._create_batch)
            app.router.add_get(f"{prefix}/batches", self._list_batches)
            app.router.add_get(f"{prefix}/batches/{{batch_id}}", self._retrieve_batch)
            app.router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", self._cancel_batch)
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=self.STOP_GRACE
        )
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            self._ready.set()
            await self._stopping.wait()
            for task in list(self._handlers):
                task.cancel()
            if self._handlers:
                await asyncio.wait(list(self._handlers), timeout=self.STOP_GRACE)
        finally:
            await runner.cleanup()

    # ----------------------------------------------------------------- handlers

    @web.middleware
    async def _holding(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The route's reply, held while `hold_replies` says so (Files and Batch API, or
        chat completions)."""
        response = await handler(request)
        routes = _CHAT_ROUTES if self._hold_chat else _HELD_ROUTES
        if not request.path.startswith(routes):
            return response
        with self._lock:
            if self._hold_after is not None:
                self._hold_after = max(0, self._hold_after - 1)
            if self._hold_after != 0:
                return response
            self._held += 1
            if self._released is None:
                self._released = asyncio.Event()
            released = self._released
        try:
            await released.wait()
        finally:  # also when the client's death cancels this handler
            with self._lock:
                self._held -= 1
        return response

    async def _models(self, request: web.Request) -> web.Response:
        with self._lock:
            self._stats.model_requests += 1
        if not self._authorized(request.headers):
            return self._unauthorized(request)
        model = {"id": self.model, "object": "model", "created": 0, "owned_by": "fakeserver"}
        return self._respond(200, {"object": "list", "data": [model]})
