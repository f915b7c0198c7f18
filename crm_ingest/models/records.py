"""The CRM records, after Dynamics 365 Customer Engagement: account, contact, lead, opportunity, case."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, BigId, UTCDateTime, utcnow

Json = JSON().with_variant(JSONB(), "postgresql")

# Option values as Dynamics has them.
CASE_ORIGIN = {"phone": 1, "email": 2, "web": 3, "facebook": 2483, "twitter": 3986}
CASE_PRIORITY = {"high": 1, "normal": 2, "low": 3}
# Lead source (leadsourcecode): Dynamics' values, and ours as custom options (100000000 and up).
LEAD_SOURCES = {"advertisement": 1, "employee_referral": 2, "external_referral": 3, "partner": 4,
                "public_relations": 5, "seminar": 6, "trade_show": 7, "web": 8, "word_of_mouth": 9,
                "other": 10, "purchased_list": 100000000, "social": 100000001, "email": 100000002}


class Provenance:
    """Where a record came from: its source and the raw item that created it."""

    source: Mapped[str | None] = mapped_column(String(100))
    origin_item_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Account(Provenance, Base):
    __tablename__ = "accounts"
    __table_args__ = {"sqlite_autoincrement": True}  # an id is never reused (migration 0025)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    website_domain: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))


class Contact(Provenance, Base):
    __tablename__ = "contacts"
    __table_args__ = {"sqlite_autoincrement": True}  # an id is never reused (migration 0025)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))  # the number to call: the business one, else the mobile
    mobile_phone: Mapped[str | None] = mapped_column(String(64))
    job_title: Mapped[str | None] = mapped_column(String(200))
    company_name: Mapped[str | None] = mapped_column(String(300))
    street: Mapped[str | None] = mapped_column(String(300))  # Dynamics' address1_line1
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    state_or_province: Mapped[str | None] = mapped_column(String(100))  # Dynamics' address1_stateorprovince
    country: Mapped[str | None] = mapped_column(String(100))  # as the list wrote it
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    do_not_contact: Mapped[bool] = mapped_column(default=False)


class Lead(Provenance, Base):
    __tablename__ = "leads"
    # only qualified leads name an account or contact: the rest (every imported lead) stay out
    __table_args__ = (*(Index(f"ix_leads_{column}", column, postgresql_where=text(f"{column} IS NOT NULL"),
                              sqlite_where=text(f"{column} IS NOT NULL")) for column in ("account_id", "contact_id")),
                      {"sqlite_autoincrement": True})  # an id is never reused (migration 0025)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    topic: Mapped[str | None] = mapped_column(String(300))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(64))  # the number to call: the business one, else the mobile
    mobile_phone: Mapped[str | None] = mapped_column(String(64))
    job_title: Mapped[str | None] = mapped_column(String(200))
    company_name: Mapped[str | None] = mapped_column(String(300))
    street: Mapped[str | None] = mapped_column(String(300))  # Dynamics' address1_line1
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    state_or_province: Mapped[str | None] = mapped_column(String(100))  # Dynamics' address1_stateorprovince
    country: Mapped[str | None] = mapped_column(String(100))  # as the list wrote it
    lead_source: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="new")
    campaign_id: Mapped[int | None] = mapped_column(BigId, index=True)  # no foreign key: see RawItem.import_job_id
    do_not_contact: Mapped[bool] = mapped_column(default=False)
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
    queue: Mapped[str | None] = mapped_column(String(100))
    # what it was qualified into (Dynamics' parentaccountid, parentcontactid); no foreign key, so
    # merging that account or contact away never fails on a lead naming it
    account_id: Mapped[int | None] = mapped_column(BigId)
    contact_id: Mapped[int | None] = mapped_column(BigId)


class Opportunity(Provenance, Base):
    __tablename__ = "opportunities"
    __table_args__ = {"sqlite_autoincrement": True}  # an id is never reused (migration 0025)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20), default="open")
    estimated_value: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    lead_source: Mapped[str | None] = mapped_column(String(50))  # its lead's, when qualified from one


class Case(Provenance, Base):
    __tablename__ = "cases"
    __table_args__ = {"sqlite_autoincrement": True}  # an id is never reused (migration 0025)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_number: Mapped[str | None] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[int | None] = mapped_column()
    priority: Mapped[int] = mapped_column(default=CASE_PRIORITY["normal"])
    status: Mapped[str] = mapped_column(String(20), default="active")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    priority_reason: Mapped[str | None] = mapped_column(String(40))  # what in the text set the priority
    queue: Mapped[str | None] = mapped_column(String(100))
    first_response_by: Mapped[datetime | None] = mapped_column(UTCDateTime())  # by the SLA of its priority
    resolve_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    entitlement_id: Mapped[int | None] = mapped_column(ForeignKey("entitlements.id"), index=True)
    other_active_cases: Mapped[list[str] | None] = mapped_column(Json)  # the customer's, when opened
    related_case_id: Mapped[int | None] = mapped_column(BigId)  # a resolved case this one continues


class Entitlement(Base):
    """Support a customer is entitled to (Dynamics' entitlement): a number of cases or hours,
    for an account or a contact, in a period; each case opened under it takes one case."""

    __tablename__ = "entitlements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    cases_remaining: Mapped[int | None] = mapped_column()  # None: not counted in cases
    hours_remaining: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))  # None: not counted in hours
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20), default="active")  # active | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Activity(Base):
    """The email, post or form submission behind a record; a reply appends one to its case."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_regarding", "regarding_type", "regarding_id"),
                      {"sqlite_autoincrement": True})  # an id is never reused (migration 0025)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    regarding_type: Mapped[str] = mapped_column(String(20))
    regarding_id: Mapped[int] = mapped_column(BigId)
    subject: Mapped[str | None] = mapped_column(String(998))
    body: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    raw_item_id: Mapped[int | None] = mapped_column(BigId, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


RECORD_MODELS: dict[str, type[Base]] = {
    "account": Account,
    "contact": Contact,
    "lead": Lead,
    "opportunity": Opportunity,
    "case": Case,
    "campaign": Campaign,
    "activity": Activity,
}
