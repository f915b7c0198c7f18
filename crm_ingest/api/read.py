"""The read API, behind the bearer token: list and filter every record type, one record with
its links, the raw items behind a record, and the customer's picture of an account or contact
(ingest/query.py and ingest/overview.py read; this edge opens the session and names things).

Each record type has its routes under its plural (/accounts, /leads, /opportunities, ...), and
under /records/{type}, where the type may also be its display name (/records/companies). The
token is checked before any parameter; an unknown filter or a bad value: 422 naming it; an
unknown record: 404. Every answer carries the display names of the record types it names.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from crm_ingest.ingest import overview, query
from crm_ingest.ingest.errors import InvalidItem, NotFound
from crm_ingest.runtime import runtime

from .auth import require_token
from .params import Id

router = APIRouter(tags=["read"], dependencies=[Depends(require_token)])

PLURALS = {"account": "accounts", "contact": "contacts", "lead": "leads", "opportunity": "opportunities",
           "case": "cases", "campaign": "campaigns", "activity": "activities", "entitlement": "entitlements"}


class ListParams:
    """The filters and paging of a list, declared for OpenAPI; any other parameter is refused."""

    def __init__(
        self,
        status: str | None = Query(None, description="Status (state for entitlements)."),
        source: str | None = Query(None, description="The configured source that made the record."),
        campaign: str | None = Query(None, description="Campaign id or name (direct link or membership)."),
        queue: str | None = Query(None, description="Owner queue (leads and cases)."),
        created_from: str | None = Query(None, description="ISO date or time, inclusive."),
        created_to: str | None = Query(None, description="ISO date or time, inclusive (a date: the whole day)."),
        search: str | None = Query(None, description="Case-insensitive text in names, emails, subjects, titles."),
        limit: int = Query(query.DEFAULT_PAGE, description=f"Page size, 1 to {query.MAX_PAGE}."),
        cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
    ) -> None:
        self.limit, self.cursor = limit, cursor


async def _read(work: Callable[..., Any]) -> Any:
    """Run a read in a session off the event loop; our errors become HTTP answers; the result
    gets display names and ISO times."""
    rt = runtime()

    def run() -> Any:
        with rt.sessions() as session:
            return work(session)

    try:
        result = await run_in_threadpool(run)
    except NotFound as exc:
        raise HTTPException(404, f"no {rt.settings.label(exc.record_type)} {exc.record_id}") from None
    except InvalidItem as exc:
        raise HTTPException(422, [{"field": exc.field, "message": exc.reason}]) from None
    return query.plain(query.labelled(result, rt.settings.label))


def _type(name: str) -> str:
    label = runtime().settings.label
    record_type = query.record_type_of(name, label)
    if record_type is None:
        raise HTTPException(404, f"{name!r} is not a record type; expected one of "
                                 f"{', '.join(label(t, True) for t in PLURALS)}")
    return record_type


def _header(record_type: str) -> dict[str, Any]:
    label = runtime().settings.label
    return {"record_type": record_type, "record_label_plural": label(record_type, True)}


async def list_of(record_type: str, request: Request, params: ListParams) -> dict:
    def work(session) -> dict:
        filters = query.Filters.parse(record_type, dict(request.query_params))
        page = query.list_records(session, record_type, filters, limit=params.limit, cursor=params.cursor)
        return {**_header(record_type), "records": [{"record_type": record_type, **row} for row in page.rows],
                "next_cursor": page.next_cursor}
    return await _read(work)


async def one(record_type: str, record_id: Id) -> dict:
    def work(session) -> dict:
        return {**_header(record_type), "id": record_id, **query.get_record(session, record_type, record_id)}
    return await _read(work)


async def items_of(record_type: str, record_id: Id, limit: int, cursor: str | None) -> dict:
    def work(session) -> dict:
        return {**_header(record_type), "id": record_id,
                **query.record_items(session, record_type, record_id, limit=limit, cursor=cursor)}
    return await _read(work)


@router.get("/items", summary="Raw items by outcome, state, source and import job, oldest first: e.g. those waiting "
                              "in review (token)")
async def items(outcome: str | None = Query(None, description="created, merged, appended, review, rejected, "
                                          "ignored; or an import's count: suppressed, duplicate_in_file, linked_contact."),
                state: str | None = Query(None, description="pending, processing, done, failed."),
                source: str | None = Query(None, description="A configured source."),
                job: int | None = Query(None, ge=1, le=2**63 - 1, description="An import job: what became of its rows."),
                after_id: int = Query(0, ge=0, le=2**63 - 1, description="`next_after_id` of the previous page."),
                limit: int = Query(query.DEFAULT_PAGE, ge=1, le=query.MAX_PAGE,
                                   description=f"Page size, 1 to {query.MAX_PAGE}.")) -> dict:
    return await _read(lambda session: query.list_items(session, outcome=outcome, state=state, source=source,
                                                        job=job, after_id=after_id, limit=limit))


@router.get("/accounts/{record_id}/overview", summary="The customer's picture of an account (token)")
async def account_overview(record_id: Id) -> dict:
    return await _read(lambda session: overview.account_overview(session, record_id))


@router.get("/contacts/{record_id}/overview", summary="The customer's picture of a contact (token)")
async def contact_overview(record_id: Id) -> dict:
    return await _read(lambda session: overview.contact_overview(session, record_id))


@router.get("/records/{record_type}", summary="List records of a type, by its name or display name (token)")
async def list_any(record_type: str, request: Request, params: Annotated[ListParams, Depends()]) -> dict:
    return await list_of(_type(record_type), request, params)


@router.get("/records/{record_type}/{record_id}", summary="One record with its links (token)")
async def get_any(record_type: str, record_id: Id) -> dict:
    return await one(_type(record_type), record_id)


@router.get("/records/{record_type}/{record_id}/items", summary="The raw items behind a record (token)")
async def items_any(record_type: str, record_id: Id, limit: int = query.DEFAULT_PAGE,
                    cursor: str | None = None) -> dict:
    return await items_of(_type(record_type), record_id, limit, cursor)


def _routes_for(record_type: str, plural: str) -> None:
    """/accounts, /accounts/{id}, /accounts/{id}/items: the same reads, documented per type."""
    async def list_route(request: Request, params: Annotated[ListParams, Depends()]) -> dict:
        return await list_of(record_type, request, params)

    async def get_route(record_id: Id) -> dict:
        return await one(record_type, record_id)

    async def items_route(record_id: Id, limit: int = query.DEFAULT_PAGE, cursor: str | None = None) -> dict:
        return await items_of(record_type, record_id, limit, cursor)

    router.add_api_route(f"/{plural}", list_route, methods=["GET"], name=f"list_{plural}",
                         summary=f"List {plural}, filtered, newest first, by cursor (token)")
    router.add_api_route(f"/{plural}/{{record_id}}", get_route, methods=["GET"], name=f"get_{record_type}",
                         summary=f"One {record_type} with its links (token)")
    router.add_api_route(f"/{plural}/{{record_id}}/items", items_route, methods=["GET"],
                         name=f"items_of_{record_type}", summary=f"The raw items that made or changed a {record_type} (token)")


for _record_type, _plural in PLURALS.items():
    _routes_for(_record_type, _plural)
