"""Items: the unit of work, one per unique abstract.

Readers yield `Entry` objects (one per occurrence in the input); `collect_items`
folds entries that carry the same normalised abstract into one `Item` that keeps
every source, so a paper listed on three pages is summarised once.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ._errors import InputError

ID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Source:
    """Where an entry was read: a file (or `-`) and a 1-based line number."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One occurrence of a paper in the input, as read."""

    title: str
    abstract: str
    source: Source
    id: str | None = None


@dataclass(slots=True)
class Item:
    """One unique abstract to summarise, with every place it was found."""

    id: str
    title: str
    abstract: str
    sources: list[Source] = field(default_factory=list)


def normalize_text(text: str) -> str:
    """Fold Unicode compatibility forms and runs of white space."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def abstract_key(abstract: str) -> str:
    """The stable id of an abstract: a hash of its normalised, case-folded text."""
    digest = hashlib.sha256(normalize_text(abstract).casefold().encode("utf-8"))
    return digest.hexdigest()[:ID_LENGTH]


def index_items(
    entries: Iterable[Entry], *, problems: list[InputError] | None = None
) -> dict[str, Item]:
    """Fold entries into unique items, in first-seen order, keeping no title or text.

    The index (abstract key -> item with every source) is what a run holds for the
    whole input; `stream_items` brings the text back one item at a time. An
    explicit id that is reused for a different abstract is a problem with the later
    entry: it is appended to `problems` (or raised when `problems` is None).
    """
    by_key: dict[str, Item] = {}
    # Explicit ids only: an item without one is found by its key, which is its id.
    owner_of_id: dict[str, str] = {}
    for entry in entries:
        key = abstract_key(entry.abstract)
        item = by_key.get(key)
        if item is not None:
            item.sources.append(entry.source)
            continue
        item_id = entry.id or key
        if _id_taken(item_id, key, by_key, owner_of_id):
            problem = InputError(
                f"id {item_id!r} is already used for a different abstract",
                path=entry.source.path,
                line=entry.source.line,
            )
            if problems is None:
                raise problem
            problems.append(problem)
            continue
        if entry.id:
            owner_of_id[item_id] = key
        by_key[key] = Item(item_id, "", "", [entry.source])
    return by_key


def _id_taken(item_id: str, key: str, by_key: dict[str, Item], owners: dict[str, str]) -> bool:
    """Whether `item_id` already names a different abstract than the one of `key`."""
    if owners.get(item_id, key) != key:
        return True
    hashed = by_key.get(item_id)  # an earlier abstract whose id is its own key
    return item_id != key and hashed is not None and hashed.id == item_id


def stream_items(
    entries: Iterable[Entry], index: dict[str, Item], *, wanted: set[str] | None = None
) -> Iterator[Item]:
    """The items of `index` with their text, from a second pass over the same entries.

    Only each item's first occurrence yields it, so the order is the index's;
    `wanted` (ids) leaves out the rest.
    """
    for entry in entries:
        item = index.get(abstract_key(entry.abstract))
        if item is None or item.sources[0] != entry.source:
            continue
        if wanted is None or item.id in wanted:
            yield Item(item.id, entry.title, entry.abstract, item.sources)


def collect_items(
    entries: Iterable[Entry], *, problems: list[InputError] | None = None
) -> list[Item]:
    """Unique items with their text, all in memory (see `index_items` for the rules)."""
    seen = list(entries)
    return list(stream_items(seen, index_items(seen, problems=problems)))
