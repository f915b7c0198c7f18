"""Path parameters every route shares."""
from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID = 2**63 - 1  # the ids' column type (BIGINT; SQLite's INTEGER): past it, no record can be

# A record's, item's or job's id in a path: 422 outside the ids' range, never the database's overflow.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
