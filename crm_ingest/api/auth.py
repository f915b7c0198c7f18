"""Who may use the guarded endpoints: the bearer tokens from the environment variable named by
`[api] tokens_env` (comma-separated), compared in constant time and never logged."""
from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from crm_ingest.runtime import runtime


def api_tokens() -> list[str]:
    rt = runtime()
    return [t.strip() for t in rt.settings.secrets.get(rt.settings.api.tokens_env, "").split(",") if t.strip()]


def known_token(given: str) -> str | None:
    """The configured token equal to `given` (every one compared, in constant time), or None."""
    found = None
    for token in api_tokens():
        if hmac.compare_digest(given.encode(), token.encode()):
            found = token
    return found


def require_token(request: Request) -> None:
    """401 unless the request carries `Authorization: Bearer <a configured token>`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token or known_token(token) is None:
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
