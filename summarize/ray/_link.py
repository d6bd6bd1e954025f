"""How a worker reaches the coordinator: the same calls, in-process or to a Ray actor.

`LocalLink` calls a `Coordinator` held in the same process (tests, one worker alone);
`ActorLink` awaits the calls of a Ray actor handle on the worker's event loop. Workers
see only `Link`, so nothing above this module imports Ray.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._coordinator import Coordinator, Lease, News, Permits, Spend


class Link(Protocol):
    """The coordinator's calls, awaited."""

    async def lease(self, batch: str, asked: Spend, *, least: Spend) -> Lease:
        """A spend lease for one batch (`Coordinator.lease`)."""
        ...

    async def settle(self, batch: str, news: News) -> None:
        """Close one batch's lease (`Coordinator.settle`)."""
        ...

    async def permits(self, worker: str, wanted: int, news: News) -> Permits:
        """Request permits, after news (`Coordinator.permits`)."""
        ...

    async def stop(self, reason: str) -> None:
        """End the job (`Coordinator.stop`)."""
        ...

    async def register(self, worker: str, pid: int) -> None:
        """Say a worker has started (`Coordinator.register`)."""
        ...


class LocalLink:
    """A `Coordinator` in this process."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    async def lease(self, batch: str, asked: Spend, *, least: Spend) -> Lease:
        return self.coordinator.lease(batch, asked, least=least)

    async def settle(self, batch: str, news: News) -> None:
        self.coordinator.settle(batch, news)

    async def permits(self, worker: str, wanted: int, news: News) -> Permits:
        return self.coordinator.permits(worker, wanted, news)

    async def stop(self, reason: str) -> None:
        self.coordinator.stop(reason)

    async def register(self, worker: str, pid: int) -> None:
        self.coordinator.register(worker, pid)


class ActorLink:
    """A `Coordinator` running as a Ray actor; `handle` is its `ActorHandle`."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def lease(self, batch: str, asked: Spend, *, least: Spend) -> Lease:
        lease: Lease = await self.handle.lease.remote(batch, asked, least=least)
        return lease

    async def settle(self, batch: str, news: News) -> None:
        await self.handle.settle.remote(batch, news)

    async def permits(self, worker: str, wanted: int, news: News) -> Permits:
        permits: Permits = await self.handle.permits.remote(worker, wanted, news)
        return permits

    async def stop(self, reason: str) -> None:
        await self.handle.stop.remote(reason)

    async def register(self, worker: str, pid: int) -> None:
        await self.handle.register.remote(worker, pid)
