"""JSON Lines: one payload a line, as a configured source would produce it (backfill, replay)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

from crm_ingest.ingest.errors import ConfigError

from .base import NewItem

ID_FIELDS = ("external_id", "id", "message_id", "post_id", "leadgen_id")
MAX_LINE = 1_000_000


class JsonLines:
    def __init__(self, path: Path, source: str, kind: str) -> None:
        self.path = Path(path)
        self.source = source
        self.kind = kind

    def fetch(self, since: dict[str, Any] | None = None) -> Iterator[NewItem]:
        try:
            lines = self.path.open("rb")
        except OSError as exc:
            raise ConfigError("path", f"cannot read {self.path}: {exc.strerror or exc}") from None
        with lines:
            number = 0
            while raw := lines.readline(MAX_LINE + 1):  # a line is never read whole past MAX_LINE
                number += 1
                if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                    digest = hashlib.sha256(raw)
                    while rest := lines.readline(1 << 20):  # the rest of it, hashed, not kept
                        digest.update(rest)
                        if rest.endswith(b"\n"):
                            break
                    yield self._item(number, raw, digest.hexdigest())
                elif raw.strip():
                    yield self._item(number, raw)

    def _item(self, number: int, raw: bytes, long_digest: str | None = None) -> NewItem:
        """A line that is not a JSON object is still landed, and rejected with the reason."""
        try:
            if len(raw) > MAX_LINE:
                raise ValueError(f"line longer than {MAX_LINE} bytes")
            payload = json.loads(raw)
            if not isinstance(payload, dict):
                raise ValueError(f"expected a JSON object, got {type(payload).__name__}")
        except (ValueError, RecursionError) as exc:  # nested past json's depth
            if isinstance(exc, RecursionError):
                exc = ValueError("nested deeper than a payload may be")
            text = raw[:2000].decode("utf-8", "replace")
            digest = long_digest or hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()
            return NewItem(f"line{number}-sha256:{digest}", self.kind,
                           {"error": f"line {number}: {exc}", "line": text})
        return NewItem(external_id_of(payload), self.kind, payload)


def external_id_of(payload: dict[str, Any]) -> str:
    """The payload's own id when it has one, else a hash of its canonical JSON."""
    for name in ID_FIELDS:
        value = payload.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
