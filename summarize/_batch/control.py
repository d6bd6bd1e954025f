"""`summarize batch status` and `cancel`: what is out at the provider, and stopping it.

Both refuse to touch batches that were sent to another endpoint or with another
key (`BatchState.refuse_elsewhere`).
"""

from __future__ import annotations

from .._errors import ProviderError
from .._output import Output
from .._settings import RunSettings
from .chunks import CREATING, timestamp, update
from .options import open_api, remote_endpoint
from .provider import BatchAPI, kept_hint
from .results import CancelResult
from .state import FINISHED, Chunk, StateDir


def status(settings: RunSettings, *, refresh: bool = True) -> tuple[list[Chunk], int]:
    """Every open batch (refreshed from the provider, not saved), and how many were collected."""
    states = StateDir(settings.output)
    state = states.load()
    chunks = state.open_chunks()
    if refresh and any(chunk.batch_id for chunk in chunks):
        with open_api(remote_endpoint(settings)) as api:
            state.refuse_elsewhere(api.identity, states.path)
            for chunk in chunks:
                if chunk.batch_id is not None:
                    update(chunk, api.retrieve(chunk.batch_id))
    return chunks, len(state.chunks) - len(chunks)


def cancel(settings: RunSettings, *, release_lost: bool = False) -> CancelResult:
    """Cancel every open batch; drop chunks not sent yet.

    A cancelled batch is still collected: what it answered becomes records, the rest
    is released for the next submit, not resubmitted. One batch that cannot be
    reached does not stop the others.
    """
    endpoint = remote_endpoint(settings)
    states = StateDir(settings.output)
    result = CancelResult()
    with Output(settings.output), open_api(endpoint) as api:
        state = states.load()
        state.refuse_elsewhere(api.identity, states.path)
        for chunk in state.open_chunks():
            try:
                _cancel(chunk, api, result)
            except ProviderError as exc:
                if exc.status == 404 and release_lost:
                    chunk.release(f"lost: {exc}")
                    result.released += chunk.count
                elif exc.status != 409:  # 409: it ended meanwhile; collect takes it
                    result.problems.append(f"batch {chunk.batch_id}: {exc}{kept_hint(exc)}")
            states.save(state)
            if not chunk.is_open:
                states.forget(chunk.key)
    return result


def _cancel(chunk: Chunk, api: BatchAPI, result: CancelResult) -> None:
    if chunk.batch_id is None and chunk.status == CREATING:  # it may exist: look first
        found = api.find(chunk.tag, since=timestamp(chunk.created_at))
        if found is not None:
            update(chunk, found)
    if chunk.batch_id is None:
        chunk.release("cancelled before it was sent")
        result.released += chunk.count
    elif chunk.status not in FINISHED | {"cancelling"}:
        update(chunk, api.cancel(chunk.batch_id))
        result.cancelled += 1
