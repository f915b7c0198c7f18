"""The process's settings, engine and session factory, made once per process (and after fork)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from crm_ingest.ingest.settings import Settings
from crm_ingest.models import make_engine, make_session_factory


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


def runtime() -> Runtime:
    """This process's runtime; a forked child gets its own engine, never its parent's sockets."""
    return _for_pid(os.getpid())


@lru_cache(maxsize=1)
def _for_pid(pid: int) -> Runtime:
    settings = Settings.load()
    engine = make_engine(settings.database_url)
    return Runtime(settings, engine, make_session_factory(engine))
