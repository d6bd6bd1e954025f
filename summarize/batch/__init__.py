"""Nightly mode on a provider's Batch API: half the cost, the same records as `run`.

    from summarize.batch import BatchOptions, collect, submit
    submit(settings)                                 # build, upload, create; returns at once
    collect(settings, BatchOptions(wait=True))       # download, validate, merge

Data flows the same way as a live run: items -> request lines (`requests`) cut
into chunks (`chunks`) -> the provider (`provider`) -> answers judged by the
`Summary` model (`requests.judge`) -> records (`collect`). What is out at the
provider lives in `OUT.batches/state.json` (`state`).
"""

from .collect import CollectResult, collect
from .control import CancelResult, cancel, status
from .options import BatchOptions, remote_endpoint
from .submit import SubmitResult, submit

__all__ = [
    "BatchOptions",
    "CancelResult",
    "CollectResult",
    "SubmitResult",
    "cancel",
    "collect",
    "remote_endpoint",
    "status",
    "submit",
]
