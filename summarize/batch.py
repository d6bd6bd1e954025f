"""Nightly mode on a provider's Batch API: half the cost, the same records as `run`.

    from summarize.batch import BatchOptions, collect, submit
    submit(settings)                                 # build, upload, create; returns at once
    collect(settings, BatchOptions(wait=True))       # download, validate, merge

Send them as a file: the same plan, request body, verdict and lines as a live run
(`summarize._core`). The modules are in `summarize._batch`: `submit` plans and reads
the pending abstracts -> request lines (`request_lines`, the live body) cut into
chunks (`chunks`, within the spend caps of `caps`) -> the provider's Files and Batch
API (`provider`); `collect` polls, and resolves each finished batch
(`finished`): answers read from its files (`answers`) and judged as live ones are
(`summarize._core.verdict`) -> lines (`summarize._core.records`), a re-ask in a
follow-up batch, or live through the live pool (`live_repair`). `control` holds
`status` and `cancel`; what is out at the provider lives in `OUT.batches/state.json`
(`state`); what each command reports is `results`.
"""

from ._batch.collect import collect
from ._batch.control import cancel, status
from ._batch.options import BatchOptions, ignored_settings, remote_endpoint
from ._batch.results import CancelResult, CollectResult, SubmitResult
from ._batch.submit import submit

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
