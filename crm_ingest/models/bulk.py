"""Set-based writes: one statement for thousands of rows.

On PostgreSQL each column travels as one array parameter and `unnest` turns the arrays back
into rows, so a 500-row insert or update is one short statement (SQLAlchemy's multi-VALUES
rendering costs a long SQL text that the driver must parse, and executemany costs a statement
per row). SQLite runs in-process, where executemany is already cheap.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

import psycopg
from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from . import jsonfast

_PG = postgresql.dialect()


def _table(model) -> Table:
    return model.__table__ if hasattr(model, "__table__") else model


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def with_defaults(table: Table, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every row with every column named, Python-side defaults applied (text SQL skips them).
    A callable default (a timestamp) is called once for the whole statement."""
    rows = list(rows)
    if not rows:
        return []
    columns, values_of = _columns_of(table, rows)
    return [{name: values_of[name][i] for name in columns} for i in range(len(rows))]


def _columns_of(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, list[Any]]]:
    """The column names in table order (the id last, when the rows carry one) and each
    column's values, defaults applied: a column no row names gets its default (a callable one
    called once), a row without a column some rows name gets None. By column, so PostgreSQL's
    arrays need no full dict per row."""
    names = set().union(*rows)
    columns, values_of = [], {}
    for column in table.columns:
        name = column.name
        if column.primary_key:
            continue
        if name in names:
            values_of[name] = [row.get(name) for row in rows]
        elif column.default is not None:
            value = column.default.arg(None) if column.default.is_callable else column.default.arg
            values_of[name] = [value] * len(rows)
        else:
            values_of[name] = [None] * len(rows)
        columns.append(name)
    if "id" in names:
        columns.append("id")
        values_of["id"] = [row.get("id") for row in rows]
    return columns, values_of


def allocate_ids(session: Session, model, count: int) -> list[int]:
    """Primary keys for rows about to be inserted, so related rows can name them first.

    PostgreSQL: from the table's sequence. SQLite: after the largest id the table ever had
    (its AUTOINCREMENT counter, for the record tables: a record's id is never reused), which is
    safe because our SQLite transactions hold the write lock from BEGIN IMMEDIATE.
    """
    if count == 0:
        return []
    table = _table(model)
    if _is_pg(session):
        # The sequence is looked up once: `nextval(pg_get_serial_sequence(...))` looked it up
        # in the catalog for every value (3.7 us a value against 0.3; a 200k-row import
        # takes 410k ids)
        stmt = text("WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence(:table, 'id') AS regclass) "
                    "AS seq) SELECT nextval(s.seq) FROM s, generate_series(1, :n)")
        return list(session.scalars(stmt, {"table": table.name, "n": count}))
    start = (session.scalar(select(func.max(table.c.id))) or 0) + 1
    if table.dialect_options["sqlite"].get("autoincrement"):
        ever = session.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": table.name})
        start = max(start, (ever or 0) + 1)
    return list(range(start, start + count))


@contextmanager
def index_lookups(session: Session):
    """Within the block, PostgreSQL plans no sequential scan where an index can answer.

    For `value = ANY(<1,000s of values>)` on a key table whose statistics lag behind (a bulk
    import grows it faster than autovacuum analyzes it, and autovacuum may be off), the
    planner's default estimate makes a scan of every row look cheaper than the index
    probes: 180 ms instead of 3 ms for 500 emails at 2M keys. The setting is put back after.
    """
    if not _is_pg(session):
        yield
        return
    previous = session.scalar(text("SELECT current_setting('enable_seqscan')"))
    session.execute(text("SET LOCAL enable_seqscan = off"))
    yield  # on an exception the transaction is rolled back, and the setting with it
    session.execute(text("SELECT set_config('enable_seqscan', :value, true)"), {"value": previous})


def plain_index_scans(session: Session) -> None:
    """For the rest of the transaction, PostgreSQL reads partial indexes of unfinished rows
    with plain index scans. Rows that finished since they were landed leave dead entries in
    such an index until a vacuum (autovacuum may be off, or behind); a bitmap scan visits
    them all again each time (0.5 s at 1M rows), a plain index scan marks them dead once."""
    if _is_pg(session):
        session.execute(text("SET LOCAL enable_bitmapscan = off"))


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def id_list(ids: Iterable[int]) -> str:
    """Ids for `IN (...)` written into a statement: on PostgreSQL several times cheaper than a
    bound parameter each (psycopg re-parses a long statement of placeholders every time), and
    still planned as the index lookups a plain IN list gets. Ints only, so nothing to escape."""
    return ",".join(str(int(item_id)) for item_id in ids)


def array_literal(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal. Sent as one text parameter: psycopg would otherwise dump a
    list element by element in Python, the largest client cost of a bulk write."""
    parts = []
    append = parts.append
    for value in values:  # strings and ints inline: a call per element was 7% of a worker's time
        kind = type(value)
        if kind is str:
            if "\\" in value or '"' in value:
                value = value.replace("\\", "\\\\").replace('"', '\\"')
            append('"' + value + '"')
        elif kind is int:
            append(str(value))
        else:
            append(_element(value))
    return "{" + ",".join(parts) + "}"


def _pg_unnest(table: Table, columns: Sequence[str], values_of: Mapping[str, Sequence[Any]],
               typed_as: Mapping[str, str] | None = None, arrays: Sequence[str] = ()):
    """FROM-clause `unnest(CAST(:c0 AS type[]), ...) AS u(c0, ...)` and its select list.

    A column holding one value in every row (a timestamp, a campaign, a source) travels as a
    single parameter instead of an array, except the `arrays` (a constant in a join condition
    lets the planner estimate it alone, and at a rare value scan the table for it). `typed_as`
    names, for a value that is not a column, the column whose type it has.
    """
    params, casts, aliases, select_list = {}, [], [], []
    for i, name in enumerate(columns):
        column = table.c[(typed_as or {}).get(name, name)]
        sql_type = _sql_type(column)
        values = values_of[name]
        is_json = "JSON" in sql_type
        if i and not is_json and name not in arrays and _all_same(values):
            value = values[0]
            params[f"c{i}"] = value.isoformat() if isinstance(value, datetime) else value
            select_list.append(f"CAST(:c{i} AS {sql_type})")
            continue
        aliases.append(f"c{i}")
        if is_json:
            params[f"c{i}"] = array_literal(None if v is None else jsonfast.dumps(v)
                                            for v in values)
            casts.append(f"CAST(CAST(:c{i} AS TEXT) AS TEXT[])")
            select_list.append(f"CAST(u.c{i} AS JSONB)")
        else:
            params[f"c{i}"] = array_literal(values)
            casts.append(f"CAST(CAST(:c{i} AS TEXT) AS {sql_type}[])")
            select_list.append(f"u.c{i}")
    return f"unnest({', '.join(casts)}) AS u({', '.join(aliases)})", select_list, params


def _sql_type(column) -> str:
    """The column's type as a cast names it: without its collation (keys are "C"; a value
    stored takes the column's collation anyway, and `CAST(x AS VARCHAR(20) COLLATE "C"[])`
    is no SQL)."""
    return column.type.compile(dialect=_PG).split(" COLLATE ", 1)[0]


def _all_same(values: Sequence[Any]) -> bool:
    first = values[0]
    if not isinstance(first, (str, int, float, bool, datetime, Decimal, type(None))):
        return False
    return all(type(v) is type(first) and v == first for v in values)


def insert_rows(session: Session, model, rows: Sequence[Mapping[str, Any]], *,
                on_conflict_do_nothing: Sequence[str] | None = None, conflict_where: str | None = None,
                returning: Sequence[str] = ()) -> list[tuple]:
    """Insert the rows (one statement on PostgreSQL); returns the `returning` columns of the
    rows actually inserted (with a conflict target, those that did not conflict).
    `conflict_where`: the predicate of a partial unique index that is the conflict target."""
    if not rows:
        return []
    table = _table(model)
    if _is_pg(session):
        columns, values_of = _columns_of(table, rows)
        quote = _PG.identifier_preparer.quote
        source, select_list, params = _pg_unnest(table, columns, values_of)
        sql = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
               f"SELECT {', '.join(select_list)} FROM {source}")
        if on_conflict_do_nothing:
            sql += (f" ON CONFLICT ({', '.join(quote(c) for c in on_conflict_do_nothing)})"
                    + (f" WHERE {conflict_where}" if conflict_where else "") + " DO NOTHING")
        if returning:
            sql += f" RETURNING {', '.join(quote(c) for c in returning)}"
            return [tuple(row) for row in session.execute(text(sql), params)]
        session.execute(text(sql), params)
        return []
    full = with_defaults(table, rows)
    stmt = sqlite.insert(table)
    if on_conflict_do_nothing:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(on_conflict_do_nothing),
                                           index_where=text(conflict_where) if conflict_where else None)
    if returning:
        stmt = stmt.returning(*[table.c[c] for c in returning])
        return [tuple(row) for row in session.execute(stmt, full)]
    session.execute(stmt, full)
    return []


def copy_text(value: str) -> bytes:
    """A text field in COPY's text format (NUL dropped: PostgreSQL text cannot hold it)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value or "\x00" in value:
        value = (value.replace("\x00", "").replace("\\", "\\\\").replace("\t", "\\t")
                 .replace("\n", "\\n").replace("\r", "\\r"))
    return value.encode()


def copy_json(payload: dict[str, Any]) -> bytes:
    """The payload as JSON in a COPY text field. JSON text holds no raw tab, newline or
    control character (all escaped), so only its backslashes need doubling."""
    data = jsonfast.dumps_bytes(payload)
    if b"\\u0000" in data:  # a NUL somewhere (or the text "\\u0000"): the careful way
        data = jsonfast.dumps_bytes(without_nul(payload))
    return data.replace(b"\\", b"\\\\")


def without_nul(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold NUL; it carries no meaning in what we ingest."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_nul(v) for v in value]
    return value


def copy_rows(session: Session, model, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows that cannot conflict (their ids allocated, no other unique key) with
    PostgreSQL's COPY, or as insert_rows does elsewhere. COPY writes a page of rows at a time
    and parses no arrays (a chunk's new leads: the largest insert of a list import after its
    keys and raw items; the 1M import's total CPU fell ~4% with it, not measured alone)."""
    if not rows:
        return
    if not _is_pg(session):
        insert_rows(session, model, rows)
        return
    table = _table(model)
    columns, values_of = _columns_of(table, rows)
    formats = [_copy_format(_sql_type(table.c[name])) for name in columns]
    fields = [_formatted(values_of[name], fmt) for name, fmt in zip(columns, formats)]
    data = b"".join(b"\t".join(line) + b"\n" for line in zip(*fields))
    quote = _PG.identifier_preparer.quote
    copy_in(session, f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN", data)


def _formatted(values: list[Any], fmt) -> list[bytes]:
    """A column's COPY fields; a value every row shares (a chunk's source, status, campaign,
    timestamps: about half of a new lead's columns) is formatted once, not once a row."""
    first = values[0]
    kind = type(first)
    if values.count(first) == len(values) and (  # == holds across bool and int: 1 == True
            kind is not bool and kind is not int or all(type(value) is kind for value in values)):
        return [fmt(first)] * len(values)
    return [fmt(value) for value in values]


def copy_in(session: Session, sql: str, data: bytes) -> None:
    """Run `COPY ... FROM STDIN` with the data on the session's connection. A failure raises
    SQLAlchemy's exception for it, as any statement's would (an OperationalError for a
    serialization failure or a lost connection, which the workers retry), not the driver's."""
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        with cursor.copy(sql) as copy:
            copy.write(data)
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def _copy_format(sql_type: str):
    """A function writing a value of this column type as a COPY text field."""
    if "JSON" in sql_type:
        return lambda value: b"\\N" if value is None else copy_json(value)

    def field(value: Any) -> bytes:
        if value is None:
            return b"\\N"
        kind = type(value)
        if kind is str:
            return copy_text(value)
        if kind is bool:
            return b"t" if value else b"f"
        if kind is int:
            return b"%d" % value
        if isinstance(value, datetime):
            return value.isoformat().encode()
        return copy_text(str(value))
    return field


def update_rows(session: Session, model, rows: Sequence[Mapping[str, Any]], key: str = "id",
                versioned: tuple[str, Mapping[Any, Any]] | None = None) -> int:
    """Update each row by its key; rows may name different columns (grouped by column set).

    `versioned=(column, {key: expected})` updates a row only where the column still holds the
    expected value (optimistic concurrency). Returns how many rows were updated.
    """
    table = _table(model)
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    updated = 0
    for names, group in groups.items():
        columns = [key] + [n for n in names if n != key]
        if versioned:
            expected = versioned[1]
            group = [{**row, "_expected": expected[row[key]]} for row in group]
        if _is_pg(session):
            quote = _PG.identifier_preparer.quote
            unnested = columns + (["_expected"] if versioned else [])
            source, select_list, params = _pg_unnest(table, unnested, {n: [row[n] for row in group] for n in unnested},
                                                     {"_expected": versioned[0]}
                                                     if versioned else {}, arrays=("_expected",))
            sets = ", ".join(f"{quote(name)} = {select_list[i]}" for i, name in enumerate(columns) if i)
            condition = f" AND t.{quote(versioned[0])} = {select_list[-1]}" if versioned else ""
            sql = (f"UPDATE {quote(table.name)} AS t SET {sets} FROM {source} "
                   f"WHERE t.{quote(key)} = u.c0{condition}")
            updated += session.execute(text(sql), params).rowcount
        else:
            conditions = [table.c[key] == bindparam("_key")]
            if versioned:
                conditions.append(table.c[versioned[0]] == bindparam("_expected"))
            stmt = update(table).where(*conditions).values({n: bindparam(n) for n in columns[1:]})
            updated += session.connection().execute(
                stmt, [{"_key": row[key], **{n: row[n] for n in columns[1:]},
                        **({"_expected": row["_expected"]} if versioned else {})} for row in group]).rowcount
    return updated
