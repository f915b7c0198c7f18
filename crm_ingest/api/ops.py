"""GET /metrics: the pipeline in Prometheus' text format, behind the API's bearer token; and
/ops, the dashboard for people (see `dashboard`).

Prometheus sends the token with `authorization: {type: Bearer, credentials_file: ...}` in its
scrape config (see README, "Metrics and alerts")."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crm_ingest.runtime import runtime

from .dashboard import router as dashboard_router
from .auth import require_token

router = APIRouter()
router.include_router(dashboard_router)


@router.get("/metrics", summary="Prometheus metrics (bearer token)", response_class=Response)
def metrics(request: Request) -> Response:
    from crm_ingest.ops.metrics import CONTENT_TYPE, render
    from crm_ingest.ops.snapshot import snapshot

    require_token(request)
    return Response(render(snapshot(runtime())), media_type=CONTENT_TYPE)
