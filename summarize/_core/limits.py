"""What is never sent: an abstract over the length limit is an `input` error line at once.

Both transports ask this before they spend anything on an abstract: live mode as it
pulls the abstract, batch mode as it writes the request file.
"""

from __future__ import annotations

from .._errors import ErrorType, SummaryError
from .._items import Item

MAX_ABSTRACT_CHARS = 20_000


def too_long(item: Item) -> SummaryError | None:
    """Why an abstract is not sent at all, if it is over the length limit."""
    if len(item.abstract) <= MAX_ABSTRACT_CHARS:
        return None
    return SummaryError(
        f"abstract is {len(item.abstract)} characters, over the limit of "
        f"{MAX_ABSTRACT_CHARS}; not sent",
        error_type=ErrorType.INPUT,
        attempts=0,
    )
