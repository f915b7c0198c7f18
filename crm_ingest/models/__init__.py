"""Storage: typed tables, engine and session setup, landing, migrations."""
from .base import Base, utcnow
from .db import make_engine, make_session_factory
from .pipeline import (
    STATES as STATES_ALL,
    DONE,
    FAILED,
    OUTCOMES,
    PENDING,
    PROCESSING,
    Acknowledgement,
    CampaignMember,
    ConnectorCheckpoint,
    DuplicateReview,
    IdentityKey,
    ImportChunk,
    ImportJob,
    IntakeCount,
    MatchKey,
    MergeLog,
    RawItem,
    SourceHealth,
    Suppression,
)
from .ops import FINISHED, LANDED, AlertState, QueueDepthMinute, ThroughputMinute
from .records import (
    CASE_ORIGIN,
    CASE_PRIORITY,
    RECORD_MODELS,
    Account,
    Activity,
    Campaign,
    Case,
    Contact,
    Entitlement,
    Lead,
    Opportunity,
)

__all__ = [
    "Base", "utcnow", "make_engine", "make_session_factory",
    "STATES_ALL", "DONE", "FAILED", "OUTCOMES", "PENDING", "PROCESSING",
    "Acknowledgement", "CampaignMember", "ConnectorCheckpoint", "DuplicateReview", "IdentityKey", "ImportChunk", "ImportJob",
    "IntakeCount", "MatchKey", "MergeLog", "RawItem", "SourceHealth",
    "Suppression", "AlertState", "QueueDepthMinute", "ThroughputMinute", "FINISHED", "LANDED",
    "CASE_ORIGIN", "CASE_PRIORITY", "RECORD_MODELS",
    "Account", "Activity", "Campaign", "Case", "Contact", "Entitlement", "Lead", "Opportunity",
]
