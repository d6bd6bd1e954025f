"""summarize on a Ray cluster: one spend cap, one rate limit and exactly-once output.

Needs the `ray` extra (`pip install 'summarize[ray]'`) only to run on Ray: this package
imports Ray lazily, so the callable class and the coordinator work (and are tested)
without it.

    from summarize.ray import SummarizeBatch
    ds.map_batches(SummarizeBatch, fn_constructor_kwargs={"settings": settings,
                   "output": "out.jsonl"}, batch_format="pandas", concurrency=2, num_cpus=0)

- `run_on_ray`: what `summarize run --engine ray` calls (`RayOptions`: where, how wide);
- `SummarizeBatch`: the callable class for `map_batches` (one per actor);
- `Coordinator`: the spend leases, request permits and stop flag every worker shares
  (`start_coordinator` starts one as an actor);
- `read_parts`: an output folder of parts read as one output, deduplicated by id.
"""

from .._parts import Parts, part_name, read_parts
from ._coordinator import Coordinator, Lease, News, Permits, Spend, Totals
from ._job import RayOptions, run_on_ray, start_coordinator
from ._worker import NO_ENDPOINT, SummarizeBatch

__all__ = [
    "NO_ENDPOINT",
    "Coordinator",
    "Lease",
    "News",
    "Parts",
    "Permits",
    "RayOptions",
    "Spend",
    "SummarizeBatch",
    "Totals",
    "part_name",
    "read_parts",
    "run_on_ray",
    "start_coordinator",
]
