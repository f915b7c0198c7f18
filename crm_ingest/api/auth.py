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
    """401 unless the request carries `Authorization: Bearer <a configured token>`; 429 for an
    address that sent more wrong tokens than `[api] logins_per_ip_per_minute` (or per day) allows,
    whatever it sends then: guessing is as slow at every door as at the dashboard's login."""
    from .intake import counter
    from .limits import over_limit

    header = request.headers.get("authorization", "")
    api = runtime().settings.api
    ip = request.client.host if request.client else "unknown"
    limits = [(f"auth-fail:{ip}", api.logins_per_ip_per_minute, 60),
              (f"auth-fail-day:{ip}", api.logins_per_ip_per_day, 86400)]
    if header and (wait := over_limit(counter(), limits, count=False)) is not None:
        raise HTTPException(429, "too many wrong tokens from your address; try again later",
                            headers={"Retry-After": str(wait)})
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or known_token(token) is None:
        if header:  # a guess (no header at all is no guess)
            over_limit(counter(), limits)
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
