"""Nightly mode on a provider's Batch API: half the cost, the same records as `run`.

    from summarize.batch import BatchOptions, collect, submit
    submit(settings)                                 # build, upload, create; returns at once
    collect(settings, BatchOptions(wait=True))       # download, validate, merge

Data flows the same way as a live run (`summarize.live`): items -> request lines
(`requests`, the live body) cut into chunks (`chunks`) -> the provider
(`provider`) -> answers judged as live ones are (`resolve`, `summarize.answer`) ->
lines (`summarize.records`), by `collect`; `repair` re-asks live through the live
loop, `control` holds `status` and `cancel`. What is out at the provider lives in
`OUT.batches/state.json` (`state`).
"""

from ._batch.collect import CollectResult, collect
from ._batch.control import CancelResult, cancel, status
from ._batch.options import BatchOptions, ignored_settings, remote_endpoint
from ._batch.submit import SubmitResult, submit

__all__ = [
    "BatchOptions",
    "CancelResult",
    "CollectResult",
    "SubmitResult",
    "cancel",
    "collect",
    "ignored_settings",
    "remote_endpoint",
    "status",
    "submit",
]
