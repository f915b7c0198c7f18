"""What every connector is, and the runner that lands what it yields with its checkpoint."""
from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterator, Protocol

from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.ingest.errors import IngestError
from crm_ingest.models.landing import NewItem, land_items, load_checkpoint, save_checkpoint

__all__ = ["Connector", "Landed", "NewItem", "run_connector"]


class Connector(Protocol):
    """Fetches what arrived since a checkpoint. Never writes records, never commits state."""

    source: str

    def fetch(self, since: dict[str, Any] | None) -> Iterator[NewItem]:
        """Yield what arrived since `since`; an item's `cursor` is where to resume after it, and
        must be safe to save after any item (no gap, no repeat beyond what landing ignores).
        Mostly oldest first; a source that reads newest first (a Facebook feed) says how its
        cursor stays safe."""
        ...


@dataclass
class Landed:
    received: int  # items the connector yielded
    ids: list[int]  # of those, the ones newly landed (to be queued by the caller)


def run_connector(sessions: sessionmaker[Session], connector: Connector, *,
                  chunk_size: int = 1000, checkpoint: bool = True, into: Landed | None = None) -> Landed:
    """Land everything the connector yields, in chunks; each chunk's checkpoint in its transaction.

    `checkpoint=False` reads from the start and keeps no checkpoint: for files given on the
    command line, where idempotent landing already makes a re-run add nothing. `into` collects
    what was landed even when the connector raises part way (a rate limit after two pages).
    A connector that stops with one of our errors stops at a clean point: what it yielded
    before is landed with its checkpoint, then the error goes on to the caller. Anything else
    (a bug, a dropped connection inside an SDK) keeps only the chunks landed before it.
    """
    since = None
    if checkpoint:
        with sessions() as session:
            since = load_checkpoint(session, connector.source)
    landed = into if into is not None else Landed(0, [])
    items = connector.fetch(since)
    while True:
        chunk, stopped = _next_chunk(items, chunk_size)
        if chunk:
            landed.received += len(chunk)
            with sessions.begin() as session:
                landed.ids.extend(land_items(session, connector.source, chunk))
                cursor = next((item.cursor for item in reversed(chunk) if item.cursor is not None), None)
                if checkpoint and cursor is not None:
                    save_checkpoint(session, connector.source, cursor)
        if stopped is not None:
            raise stopped
        if not chunk:
            return landed


def _next_chunk(items: Iterator[NewItem], size: int) -> tuple[list[NewItem], IngestError | None]:
    """Up to `size` items, and the error of ours that ended them early, if one did."""
    chunk: list[NewItem] = []
    try:
        for item in islice(items, size):
            chunk.append(item)
    except IngestError as exc:
        return chunk, exc
    return chunk, None
