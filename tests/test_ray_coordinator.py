"""The cluster's coordinator as a plain class: spend leases, request permits, the stop flag.

No Ray here: the actor runs these same methods one at a time, as these tests call them.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from summarize import SpendCap
from summarize.ray import Coordinator, News, Spend
from summarize.ray._coordinator import chunk_for
from summarize.ray._link import LocalLink
from summarize.ray._pacer import ClusterPacer, JobStopped, Reporter


def tokens(count: int) -> Spend:
    return Spend(prompt_tokens=count)


def spent(batch: str, count: int) -> News:
    return News(spent=((batch, Spend(prompt_tokens=count, requests=1)),))


class Clock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------- spend leases


def test_a_batch_is_leased_its_estimate_while_the_cap_has_room() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=10_000))
    lease = coordinator.lease("b1", tokens(3_000), least=tokens(1_000))
    assert (lease.tokens, lease.cost, lease.empty) == (3_000, None, False)


def test_a_lease_is_cut_to_what_is_left_and_refused_when_not_one_abstract_fits() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=5_000))
    assert coordinator.lease("b1", tokens(3_000), least=tokens(1_000)).tokens == 3_000
    assert coordinator.lease("b2", tokens(3_000), least=tokens(1_000)).tokens == 2_000
    refused = coordinator.lease("b3", tokens(3_000), least=tokens(1_000))
    assert refused.empty and refused.tokens == 0
    # b1 and b2 may still hand budget back: the job is not stopped yet
    assert coordinator.stopped is None


def test_settling_hands_back_what_a_batch_did_not_spend() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=5_000))
    coordinator.lease("b1", tokens(5_000), least=tokens(1_000))
    coordinator.settle("b1", spent("b1", 1_500))
    assert coordinator.lease("b2", tokens(5_000), least=tokens(1_000)).tokens == 3_500
    assert coordinator.totals().spent.tokens == 1_500


def test_the_job_stops_at_the_cap_once_no_lease_is_open() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=2_000))
    coordinator.lease("b1", tokens(2_000), least=tokens(1_000))
    coordinator.settle("b1", spent("b1", 1_800))
    refused = coordinator.lease("b2", tokens(2_000), least=tokens(1_000))
    assert refused.empty
    assert coordinator.stopped == "token cap: the cluster's spend is at --max-tokens-total 2,000"
    assert refused.refused == coordinator.stopped


def test_a_batch_run_again_gets_a_new_lease_and_its_first_spend_stays_counted() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=10_000))
    coordinator.lease("b1", tokens(4_000), least=tokens(1_000))
    coordinator.tell(spent("b1", 1_000))  # then its worker died, unsettled
    again = coordinator.lease("b1", tokens(4_000), least=tokens(1_000))
    assert again.tokens == 4_000  # the dead lease's promise is released, not held forever
    coordinator.settle("b1", spent("b1", 3_900))
    totals = coordinator.totals()
    assert totals.spent.tokens == 4_900  # requests paid again count
    assert totals.repeated_batches == 1


def test_a_cost_cap_is_leased_in_dollars() -> None:
    coordinator = Coordinator(SpendCap(max_cost=1.0))
    lease = coordinator.lease("b1", Spend(cost=0.75), least=Spend(cost=0.25))
    assert lease.tokens is None and lease.cost == 0.75
    assert coordinator.lease("b2", Spend(cost=0.75), least=Spend(cost=0.25)).cost == 0.25


def test_no_cap_leases_without_limit() -> None:
    lease = Coordinator().lease("b1", tokens(10**9), least=tokens(1))
    assert (lease.tokens, lease.cost, lease.empty) == (None, None, False)


def test_guesses_are_scaled_by_how_far_answers_outran_them() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=1_000_000))
    coordinator.tell(News(ratios=(2.0,) * 30))
    lease = coordinator.lease("b1", tokens(1_000), least=tokens(100))
    assert lease.factor == 2.0 and lease.tokens == 2_000


def test_a_few_answers_only_raise_the_scale() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=1_000_000))
    coordinator.tell(News(ratios=(0.5,) * 5))
    assert coordinator.lease("b1", tokens(1_000), least=tokens(100)).factor == 1.0


@settings(max_examples=200, deadline=None)
@given(
    cap=st.integers(1_000, 50_000),
    steps=st.lists(
        st.tuples(st.integers(0, 5), st.integers(100, 20_000), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=60,
    ),
)
def test_leases_never_promise_more_than_the_cap_whatever_the_interleaving(
    cap: int, steps: list[tuple[int, int, float]]
) -> None:
    # Six batches lease, report and settle in any order; each spends at most its lease.
    coordinator = Coordinator(SpendCap(max_tokens=cap))
    held: dict[str, int] = {}
    used: dict[str, int] = {}
    for batch_number, asked, share in steps:
        batch = f"b{batch_number}"
        if batch not in held:
            lease = coordinator.lease(batch, tokens(asked), least=tokens(100))
            if not lease.empty:
                assert lease.tokens is not None
                held[batch], used[batch] = lease.tokens, 0
        elif share < 0.5:
            more = int((held[batch] - used[batch]) * share)
            used[batch] += more
            coordinator.tell(spent(batch, more))
        else:
            coordinator.settle(batch, spent(batch, int((held[batch] - used[batch]) * share)))
            del held[batch], used[batch]
        promised = sum(held[b] - used[b] for b in held)
        assert coordinator.totals().spent.tokens + promised <= cap


# ---------------------------------------------------------------------- request permits


def test_permits_of_two_workers_interleave_on_one_schedule() -> None:
    clock = Clock()
    coordinator = Coordinator(rpm=1_200, clock=clock)  # 20 a second
    first = coordinator.permits("w1", 5, News())
    second = coordinator.permits("w2", 5, News())
    slots = sorted(first.slots + second.slots)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert gaps == pytest.approx([0.05] * 9)
    assert first.per_second == pytest.approx(20.0) and second.workers == 2


def test_a_reported_429_pauses_every_worker_and_slows_the_schedule() -> None:
    clock = Clock()
    coordinator = Coordinator(rpm=1_200, clock=clock)
    coordinator.permits("w1", 2, News())
    after = coordinator.permits("w2", 2, News(throttled=(2.0,)))
    assert after.slots[0] >= clock.now + 2.0 and after.paused_until == clock.now + 2.0
    assert after.per_second is not None and after.per_second < 20.0  # x0.8 after a 429
    assert coordinator.totals().throttled == 1


def test_a_limit_a_worker_read_in_headers_paces_the_whole_cluster() -> None:
    clock = Clock()
    coordinator = Coordinator(clock=clock)
    assert coordinator.permits("w1", 3, News()).slots == (clock.now,) * 3  # no limit known
    learned = coordinator.permits("w1", 3, News(limit_rpm=600.0))
    assert learned.per_second == pytest.approx(600 * 0.97 / 60)
    assert learned.slots[1] - learned.slots[0] == pytest.approx(60 / (600 * 0.97))


def test_permits_come_in_chunks_sized_to_a_quarter_second_of_the_rate() -> None:
    assert chunk_for(None) == 16
    assert chunk_for(20.0) == 5
    assert chunk_for(0.5) == 1
    assert chunk_for(10_000.0) == 64


def test_a_stopped_job_gives_no_permits_and_no_leases() -> None:
    coordinator = Coordinator(SpendCap(max_tokens=10_000))
    coordinator.stop("the endpoint stopped answering")
    coordinator.stop("a later reason")
    assert coordinator.permits("w1", 4, News()).stopped == "the endpoint stopped answering"
    assert coordinator.permits("w1", 4, News()).slots == ()
    assert coordinator.lease("b1", tokens(10), least=tokens(10)).refused == (
        "the endpoint stopped answering")  # fmt: skip


# ---------------------------------------------------------------------- a worker's pacer


class CountingLink(LocalLink):
    def __init__(self, coordinator: Coordinator) -> None:
        super().__init__(coordinator)
        self.permit_calls = 0

    async def permits(self, worker: str, wanted: int, news: News):  # type: ignore[no-untyped-def]
        self.permit_calls += 1
        return await super().permits(worker, wanted, news)


async def test_a_worker_asks_for_permits_once_per_chunk_not_per_request() -> None:
    link = CountingLink(Coordinator())  # no limit known: permits come 16 at a time
    pacer = ClusterPacer(link, Reporter(), "w1")
    for _ in range(40):
        await pacer.acquire()
        pacer.observe({})
    assert link.permit_calls == 3


async def test_a_worker_paced_by_the_cluster_sends_at_its_rate() -> None:
    link = LocalLink(Coordinator(rpm=6_000))  # 100 a second
    pacer = ClusterPacer(link, Reporter(), "w1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(pacer.acquire() for _ in range(21)))
    assert loop.time() - started >= 0.19  # 21 starts spaced 10 ms apart


async def test_a_worker_stops_the_job_when_the_endpoint_stops_answering() -> None:
    clock = Clock()
    coordinator = Coordinator(clock=clock)
    pacer = ClusterPacer(LocalLink(coordinator), Reporter(), "w1", silence_s=30.0,
                         wall=clock)  # fmt: skip
    await pacer.acquire()  # sent; no answer comes
    clock.now += 31
    with pytest.raises(JobStopped, match="stopped answering"):
        await pacer.acquire()
    await asyncio.sleep(0)  # the stop is told to the coordinator without being waited for
    await asyncio.sleep(0)
    assert coordinator.stopped is not None and "stopped answering" in coordinator.stopped


async def test_answers_and_429s_reach_the_coordinator() -> None:
    coordinator = Coordinator()
    reporter = Reporter()
    pacer = ClusterPacer(LocalLink(coordinator), reporter, "w1")
    await pacer.acquire()
    pacer.observe({"x-ratelimit-limit-requests": "600"})
    pacer.settle(0, 0)  # an answer got through
    pacer.rate_limited(0.01)
    for _ in range(3):
        await asyncio.sleep(0)
    assert coordinator.totals().throttled == 1
    assert coordinator.totals().rpm == pytest.approx(600 * 0.97)


async def test_a_limit_read_in_headers_drops_the_unpaced_permits_held() -> None:
    link = CountingLink(Coordinator())
    pacer = ClusterPacer(link, Reporter(), "w1")
    await pacer.acquire()  # 16 permits for "now", one used
    pacer.observe({"x-ratelimit-limit-requests": "1200"})
    await pacer.acquire()  # not one of the 15 held: they would burst past the limit
    assert link.permit_calls == 2
    assert pacer.rpm == pytest.approx(1200 * 0.97)


async def test_a_workers_width_is_sized_from_its_share_of_the_clusters_rate() -> None:
    coordinator = Coordinator(rpm=480)  # 8 requests a second for the cluster
    coordinator.register("w2", 0)  # another worker: this one's share is 4 a second
    pacer = ClusterPacer(LocalLink(coordinator), Reporter(), "w1")
    await pacer.enter()
    assert pacer.limits()["concurrency"] == 1  # one request first, as in a local run
    await pacer.acquire()  # the permit call brings the cluster's rate and its workers
    pacer.leave(0.25)
    assert pacer.limits()["concurrency"] == 3  # 4/s x 0.25 s x 1.5, rounded up, + 1
    assert pacer.maximum == 256


async def test_a_workers_fixed_width_stays_as_given() -> None:
    pacer = ClusterPacer(LocalLink(Coordinator(rpm=480)), Reporter(), "w1", width=4,
                         maximum=None)  # fmt: skip
    await pacer.enter()
    await pacer.acquire()
    pacer.leave(0.25)
    assert pacer.limits()["concurrency"] == 4
    assert pacer.maximum == 4
