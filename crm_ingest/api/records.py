"""Lifecycle actions over HTTP, behind the bearer token: qualify, disqualify or close a lead,
resolve or reopen a case, assign a lead or case to a queue (ingest/lifecycle.py decides).

The token is checked before the body is read. Unknown record: 404; the record's state refuses
the action (qualifying a disqualified lead, reopening an active case): 409; a bad body or
value: 422. Answers name each record's type and its display name ([labels] in ingest.toml).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from crm_ingest.ingest import lifecycle
from crm_ingest.ingest.errors import InvalidItem, InvalidState, NotFound
from crm_ingest.runtime import runtime

from .auth import require_token
from .params import Id

router = APIRouter(tags=["records"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualifyOptions(_Body):
    account: bool = True
    contact: bool = True
    opportunity: bool = True


class CloseOptions(_Body):
    status: str = "canceled"


class DisqualifyOptions(_Body):
    reason: str = Field(description=f"one of {', '.join(lifecycle.LEAD_DISQUALIFIED)}")


class ResolveOptions(_Body):
    resolution: str | None = Field(None, max_length=2000)  # its activity keeps 998 characters
    hours: float | None = Field(None, ge=0, le=100_000)  # the time the case took; taken from an hours entitlement


class AssignOptions(_Body):
    queue: str = Field(max_length=200)


@router.post("/leads/{lead_id}/qualify", summary="Qualify a lead (token)")
async def qualify(lead_id: Id, request: Request) -> dict:
    options = await _body(request, QualifyOptions)
    return await _act(lifecycle.qualify, lead_id, options.account, options.contact, options.opportunity,
                      settings=True)


@router.post("/leads/{lead_id}/disqualify", summary="Disqualify a lead with a reason (token)")
async def disqualify(lead_id: Id, request: Request) -> dict:
    options = await _body(request, DisqualifyOptions, required=True)
    return await _act(lifecycle.disqualify, lead_id, options.reason)


@router.post("/leads/{lead_id}/close", summary="Close a lead without qualifying it (token)")
async def close(lead_id: Id, request: Request) -> dict:
    options = await _body(request, CloseOptions)
    return await _act(lifecycle.close_lead, lead_id, options.status)


@router.post("/cases/{case_id}/resolve", summary="Resolve a case (token)")
async def resolve(case_id: Id, request: Request) -> dict:
    options = await _body(request, ResolveOptions)
    return await _act(lifecycle.resolve_case, case_id, options.resolution, options.hours)


@router.post("/cases/{case_id}/reopen", summary="Reopen a resolved or cancelled case (token)")
async def reopen(case_id: Id, request: Request) -> dict:
    await _body(request, _Body)
    return await _act(lifecycle.reopen_case, case_id)


@router.post("/{record_type}/{record_id}/assign", summary="Put a lead or case in a queue (token)")
async def assign(record_type: str, record_id: Id, request: Request) -> dict:
    options = await _body(request, AssignOptions, required=True)
    return await _act(lifecycle.assign, _queued_type(record_type), record_id, options.queue)


async def _body(request: Request, model: type[_Body], required: bool = False) -> Any:
    """The token first, then the JSON body (an empty one takes the defaults, unless required)."""
    require_token(request)
    raw = await request.body()
    if not raw.strip():
        raw = b"{}" if not required else raw
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(422, [{"field": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
                                  for e in exc.errors(include_url=False, include_input=False)]) from None


async def _act(action: Callable[..., dict], *args: Any, settings: bool = False) -> dict:
    rt = runtime()

    def work() -> dict:
        with rt.sessions.begin() as session:
            return action(session, rt.settings, *args) if settings else action(session, *args)

    label = rt.settings.label
    try:
        result = await run_in_threadpool(work)
    except NotFound as exc:
        raise HTTPException(404, f"no {label(exc.record_type)} {exc.record_id}") from None
    except InvalidState as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidItem as exc:
        raise HTTPException(422, [{"field": exc.field, "message": exc.reason}]) from None
    return lifecycle.with_labels(result, label)


def _queued_type(name: str) -> str:
    """'leads', 'cases', or a display name of one ('tickets') -> the record type; else 404."""
    label = runtime().settings.label
    wanted = name.strip().lower()
    for record_type in lifecycle.QUEUED:
        if wanted in (record_type, record_type + "s", label(record_type).lower(), label(record_type, True).lower()):
            return record_type
    raise HTTPException(404, f"{name!r} is not a record type that sits in a queue; expected one of "
                             f"{', '.join(label(t, True) for t in lifecycle.QUEUED)}")
