"""The runner lands a connector's items and its checkpoint in the same transaction."""
from sqlalchemy import func, select

from crm_ingest.connectors.base import NewItem, run_connector
from crm_ingest.models import RawItem
from crm_ingest.models.landing import load_checkpoint


class Numbers:
    """A source of numbered items; can be told to break after some of them."""

    source = "numbers"

    def __init__(self, count: int, fail_after: int | None = None) -> None:
        self.count, self.fail_after = count, fail_after

    def fetch(self, since):
        start = (since or {}).get("after", 0)
        for n in range(start + 1, self.count + 1):
            if self.fail_after is not None and n > self.fail_after:
                raise ConnectionError("source went away")
            yield NewItem(str(n), "row", {"fields": {"email": f"n{n}@example.com"}}, {"after": n})


def test_a_source_that_breaks_keeps_exactly_the_chunks_it_landed(sqlite_url, sessions_for):
    sessions = sessions_for(sqlite_url)
    # Given a source that fails after 250 items, landed in chunks of 100
    try:
        run_connector(sessions, Numbers(1000, fail_after=250), chunk_size=100)
    except ConnectionError:
        pass
    # Then the two whole chunks are landed and the checkpoint is exactly after them
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawItem)) == 200
        assert load_checkpoint(session, "numbers") == {"after": 200}

    # When it runs again, it resumes from the checkpoint and lands the rest, nothing twice
    landed = run_connector(sessions, Numbers(1000), chunk_size=100)
    assert (landed.received, len(landed.ids)) == (800, 800)
    with sessions() as session:
        assert session.scalar(select(func.count(func.distinct(RawItem.external_id)))) == 1000
        assert load_checkpoint(session, "numbers") == {"after": 1000}
    # And a re-fetch from the last checkpoint yields nothing new
    assert run_connector(sessions, Numbers(1000), chunk_size=100).ids == []
