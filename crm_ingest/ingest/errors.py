"""Errors sorted by the reaction they need: retry later, stop and fix, or reject this item."""
from __future__ import annotations


class IngestError(Exception):
    """Base of every error this project raises on purpose."""


class RetriableError(IngestError):
    """Try again later; `retry_after` seconds when the other side said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """The other side's rate limit: nothing more until `retry_at` (a UTC datetime), which the
    poll is rescheduled for; no worker sleeps on it."""

    def __init__(self, message: str, retry_at) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class FatalError(IngestError):
    """Retrying will not help (bad credentials, bad configuration): a person must act."""


class CredentialsFailed(FatalError):
    """A token or password was refused or has expired: the source is unhealthy until fixed,
    and is not retried in a loop."""


class ConfigError(FatalError):
    """Bad configuration; names the key that is wrong."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


class InvalidItem(IngestError):
    """This item cannot become a record; it is rejected with the field and the reason, and we go on."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(IngestError):
    """No record of that type with that id: nothing was changed."""

    def __init__(self, record_type: str, record_id: int) -> None:
        super().__init__(f"no {record_type} {record_id}")
        self.record_type = record_type
        self.record_id = record_id


class InvalidState(IngestError):
    """The record's state does not allow the action (qualifying a disqualified lead, reopening an
    open case): nothing was changed."""
