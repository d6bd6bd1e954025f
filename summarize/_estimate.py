"""The dry run: what a run would send and cost, before it sends anything.

    >>> from summarize import RunSettings, estimate
    >>> guess = estimate(RunSettings(inputs=("papers.txt",)))
    >>> guess.pending, guess.prompt_tokens, guess.cost_usd
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ._core.plan import Plan, pending_ids, plan
from ._core.records import fingerprint
from ._core.request import prompt_tokens
from ._errors import InputError
from ._items import stream_items
from ._output import failed_redos, peek_records
from ._readers import Inputs, index_inputs
from ._settings import RunSettings
from ._tokens import TokenEstimator


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a run would send, before it sends anything (`--dry-run`)."""

    model: str
    unique: int
    pending: int
    prompt_tokens: int
    completion_tokens: int
    completion_basis: str
    cost_usd: float | None
    input_problems: list[InputError] = field(default_factory=list)
    # Said when the dry run left the embedded model unassembled: a first run assembles it.
    note: str | None = None


def estimate(settings: RunSettings, *, stdin: TextIO | None = None) -> Estimate:
    """Estimate tokens and cost of `run(settings)` without a request or a write."""
    planned = plan(settings, dry_run=True)
    prompt = planned.made_by.prompt
    written = list(peek_records(settings.output))
    done = {str(record.get("id")): fingerprint(record) for record in written}
    failed = failed_redos(settings.output)  # kept records a redo failed on: sent again
    estimator = TokenEstimator(settings.endpoint.max_tokens)
    with closing(Inputs(settings.inputs, stdin=stdin)) as source:
        index, problems = index_inputs(source, strict=settings.strict)
        pending, _ = pending_ids(index, lambda i: done.get(i) == planned.wanted and i not in failed,
                              force=settings.force, limit=settings.limit)  # fmt: skip
        items = stream_items(source.entries([]), index, wanted=set(pending))
        tokens = sum(prompt_tokens(prompt, item, estimator) for item in items)
    per_answer, basis = _completion_guess(written, settings.output, estimator)
    completion = per_answer * len(pending)
    price = planned.price
    cost = None if price is None else price.cost(prompt=tokens, cached=0, completion=completion)
    return Estimate(planned.made_by.model, len(index), len(pending), tokens, completion, basis,
                    cost, problems, _model_note(planned))  # fmt: skip


def _model_note(planned: Plan) -> str | None:
    if planned.local is None or planned.local.path.exists():
        return None
    return f"the embedded model is not assembled yet (the first run writes {planned.local.path})"


def _completion_guess(
    written: list[dict[str, Any]], output: Path, estimator: TokenEstimator
) -> tuple[int, str]:
    """Completion tokens per answer: the mean of the records already written, if any."""
    counts = [c for c in (int(r.get("completion_tokens") or 0) for r in written) if c > 0]
    if counts:
        return round(sum(counts) / len(counts)), f"mean of {len(counts)} records in {output}"
    return estimator.completion_tokens(), "a first guess; no records yet"
