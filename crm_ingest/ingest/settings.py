"""One read-only settings object from the environment plus `ingest.toml`, checked at start.

Nothing else in the project reads `os.environ`: pass a mapping to `Settings.load` instead.
"""
from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import phonenumbers

from .endpoints import (
    FacebookConfig,
    ImapConfig,
    TwitterConfig,
    api_from_toml,
    forms_from_toml,
)
from .errors import ConfigError

ITEM_KINDS = ("row", "email", "form", "post", "leadgen")  # leadgen: a Facebook Lead Ads lead
RECORD_TYPES = ("lead", "contact", "case", "auto")  # auto: the text classifier decides lead, case or other
LABELLED_TYPES = ("account", "contact", "lead", "opportunity", "case", "campaign", "activity")
PRIORITIES = ("high", "normal", "low")
CASE_ORIGINS = ("phone", "email", "web", "facebook", "twitter")


@dataclass(frozen=True)
class SourceConfig:
    """A configured source: what its items are and what they become by default."""

    name: str
    kind: str = "row"
    record_type: str = "lead"
    region: str = "SE"
    campaign: str | None = None
    lead_source: str | None = None
    case_origin: str | None = None
    # Compare new people with look-alikes and queue possible duplicates for review. Default:
    # yes for forms, mail and posts (people writing to us), no for rows (bulk lists match by
    # their contact points only, at list speed).
    review_duplicates: bool | None = None
    rules: tuple = ()  # routing.Rule, in order; the first that matches decides
    min_confidence: float = 0.6  # a classifier answer less sure than this goes to review
    queue: str | None = None  # the queue the source's cases and leads are put in
    imap: ImapConfig | None = None  # the mailbox this email source polls
    acknowledge: Any = None  # acknowledge.AckConfig: reply with the case number (SMTP)
    twitter: TwitterConfig | None = None  # the Twitter/X mentions or search this post source polls
    facebook: FacebookConfig | None = None  # the Facebook Page feed or Lead Ads forms it polls

    @property
    def polled(self) -> ImapConfig | TwitterConfig | FacebookConfig | None:
        """What this source polls on its own interval (`poll_seconds`), if anything."""
        return self.imap or self.twitter or self.facebook

    @property
    def secret_envs(self) -> set[str]:
        """The environment variables holding this source's passwords and tokens."""
        names = {self.imap.password_env if self.imap else None,
                 self.twitter.bearer_token_env if self.twitter else None,
                 self.facebook.access_token_env if self.facebook else None,
                 self.acknowledge.password_env if self.acknowledge else None}
        return {name for name in names if name}

    @property
    def reviews_duplicates(self) -> bool:
        return self.kind != "row" if self.review_duplicates is None else self.review_duplicates


@dataclass(frozen=True)
class PipelineConfig:
    batch_size: int = 500
    max_attempts: int = 5
    lease_seconds: int = 300
    task_time_limit_seconds: int = 240
    sweep_interval_seconds: float = 30.0
    requeue_after_seconds: float = 120.0
    retry_backoff_seconds: float = 10.0
    retry_backoff_max_seconds: float = 600.0

    def check(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ConfigError(f"pipeline.{f.name}", "must be greater than zero")
        if self.lease_seconds <= self.task_time_limit_seconds:
            raise ConfigError("pipeline.lease_seconds",
                              "must be longer than pipeline.task_time_limit_seconds, or a slow "
                              "task's items would be handed to a second worker while it still runs")


@dataclass(frozen=True)
class SchedulerConfig:
    """Beat's leader lock: of any number of `ingest beat` processes the lock's holder alone sends;
    it renews the lock every loop, and a standby takes over once a dead holder's lock lapses."""

    max_loop_seconds: float = 5.0  # beat wakes at least this often, renewing the lock each time
    lock_timeout_seconds: int = 15  # a holder that stopped renewing loses the lock after this
    key_prefix: str = "crm_ingest:beat:"  # its keys (lock, entries) in the broker's Redis database

    def check(self) -> None:
        if not self.max_loop_seconds > 0:
            raise ConfigError("scheduler.max_loop_seconds", "must be greater than zero")
        if self.lock_timeout_seconds < 2 * self.max_loop_seconds:
            raise ConfigError("scheduler.lock_timeout_seconds",
                              "must be at least twice scheduler.max_loop_seconds: the holder renews the lock "
                              "once a loop, and a lock that lapses between two renewals lets a second beat in")


@dataclass(frozen=True)
class AlertsConfig:
    """The webhook told when a polled source turns unhealthy (`source_failures` failures in a
    row, or refused credentials at once) or a queue stays above `queue_threshold` messages for
    `queue_minutes`; and again when that is over. No URL: no alerts."""

    webhook_url: str | None = None
    webhook_url_env: str | None = None  # or the environment variable holding it (a Slack URL is a secret)
    queue_threshold: int = 1000
    queue_minutes: float = 10.0
    source_failures: int = 3
    timeout_seconds: float = 5.0

    def check(self) -> None:
        if self.webhook_url and self.webhook_url_env:
            raise ConfigError("alerts.webhook_url", "give webhook_url or webhook_url_env, not both")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ConfigError("alerts.webhook_url", "must be an http:// or https:// URL")
        for name in ("queue_threshold", "queue_minutes", "source_failures", "timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"alerts.{name}", "must be greater than zero")


def builtin_sources(region: str) -> dict[str, SourceConfig]:
    """Sources that exist without configuration, so the demo and a first import just work.
    Mail to a general address and posts are read by the classifier (lead, case or other; unsure
    answers go to review); retweets and shares are ignored; forms make leads, lists leads."""
    from .routing import Rule

    shares = (Rule("ignore", name="shares", retweet=True, reason="a retweet or share"),)
    return {
        "list": SourceConfig("list", kind="row", record_type="lead", region=region,
                             lead_source="purchased_list"),
        "mail": SourceConfig("mail", kind="email", record_type="auto", region=region,
                             case_origin="email", lead_source="email"),
        "web": SourceConfig("web", kind="form", record_type="lead", region=region,
                            lead_source="web"),
        "twitter": SourceConfig("twitter", kind="post", record_type="auto", region=region,
                                case_origin="twitter", lead_source="social", rules=shares),
        "facebook": SourceConfig("facebook", kind="post", record_type="auto", region=region,
                                 case_origin="facebook", lead_source="social", rules=shares),
        "facebook_leads": SourceConfig("facebook_leads", kind="leadgen", record_type="lead", region=region,
                                       lead_source="social"),
    }


@dataclass(frozen=True)
class SlaTerm:
    first_response_hours: float
    resolve_hours: float


DEFAULT_SLA = {"high": SlaTerm(1, 8), "normal": SlaTerm(8, 72), "low": SlaTerm(24, 240)}


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///ingest.db"
    redis_url: str | None = None
    config_path: Path | None = None
    region: str = "SE"
    sources: Mapping[str, SourceConfig] = field(default_factory=lambda: builtin_sources("SE"))
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    matching: Mapping[str, Any] | None = None  # rule sets per record pair; None: the defaults
    sla: Mapping[str, SlaTerm] = field(default_factory=lambda: dict(DEFAULT_SLA))  # per case priority
    # passwords named by the configuration (imap.password_env), read from the environment once;
    # never printed (repr) and never logged
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    threading: Any = None  # threads.ThreadingConfig; None: its defaults
    forms: Mapping[str, Any] = field(default_factory=dict)  # endpoints.FormConfig by key
    api: Any = None  # endpoints.ApiConfig; None: its defaults
    labels: Mapping[str, str] = field(default_factory=dict)  # record type -> its display name

    def label(self, record_type: str | None, plural: bool = False) -> str:
        """A record type's display name ('[labels] account = "company"'); the database keeps
        the canonical names."""
        if record_type is None:
            return ""
        name = self.labels.get(record_type, record_type)
        if not plural:
            return name
        return name[:-1] + "ies" if name.endswith("y") and name[-2:-1] not in "aeiou" else name + "s"

    @property
    def embedded(self) -> bool:
        """No broker: work runs in-process."""
        return not self.redis_url

    def source(self, name: str) -> SourceConfig:
        try:
            return self.sources[name]
        except KeyError:
            known = ", ".join(sorted(self.sources))
            raise ConfigError("--source", f"unknown source {name!r}; configured: {known}") from None

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        path = Path(env.get("INGEST_CONFIG", "ingest.toml"))
        explicit = "INGEST_CONFIG" in env
        data: dict[str, Any] = {}
        if path.is_dir():
            raise ConfigError("INGEST_CONFIG", f"{path} is a folder, not a TOML file")
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(str(path), f"not valid TOML: {exc}") from None
        elif explicit:
            raise ConfigError("INGEST_CONFIG", f"file {path} does not exist")
        settings = from_toml(data, config_path=path if path.exists() else None)
        wanted = {name for source in settings.sources.values() for name in source.secret_envs}
        if settings.alerts.webhook_url_env:
            wanted.add(settings.alerts.webhook_url_env)
        if settings.api is not None:
            wanted |= {settings.api.tokens_env, settings.api.form_secret_env,
                       settings.api.facebook_verify_token_env, settings.api.facebook_app_secret_env}
        return replace(
            settings,
            database_url=env.get("DATABASE_URL") or "sqlite:///ingest.db",
            redis_url=env.get("REDIS_URL") or None,
            secrets={name: env[name] for name in wanted if env.get(name)},
        )


def from_toml(data: Mapping[str, Any], config_path: Path | None = None) -> Settings:
    _only_keys(data, "", {"region", "sources", "pipeline", "scheduler", "matching", "sla", "labels", "threading",
                          "forms", "api", "alerts"})
    region = _region(data.get("region", "SE"), "region")

    pipeline_data = _table(data.get("pipeline", {}), "pipeline")
    defaults = PipelineConfig()
    _only_keys(pipeline_data, "pipeline.", {f.name for f in fields(PipelineConfig)})
    pipeline = replace(defaults, **{
        key: _number(value, f"pipeline.{key}", type(getattr(defaults, key)))
        for key, value in pipeline_data.items()
    })
    pipeline.check()
    scheduler = _scheduler(_table(data.get("scheduler", {}), "scheduler"))
    alerts = _alerts(_table(data.get("alerts", {}), "alerts"))

    sources = builtin_sources(region)
    for name, raw in _table(data.get("sources", {}), "sources").items():
        sources[name] = _source(name, _table(raw, f"sources.{name}"), sources.get(name), region)
    from .matching import rules_from_toml  # matching imports normalize only: no cycle

    matching = rules_from_toml(_table(data.get("matching", {}), "matching"))
    sla = dict(DEFAULT_SLA)
    for priority, raw in _table(data.get("sla", {}), "sla").items():
        where = f"sla.{priority}"
        if priority not in PRIORITIES:
            raise ConfigError(where, f"unknown priority; expected one of {', '.join(PRIORITIES)}")
        raw = _table(raw, where)
        _only_keys(raw, where + ".", {"first_response_hours", "resolve_hours"})
        term = {key: _number(raw.get(key, getattr(sla[priority], key)), f"{where}.{key}", float)
                for key in ("first_response_hours", "resolve_hours")}
        if not 0 < term["first_response_hours"] <= term["resolve_hours"]:
            raise ConfigError(where, "needs 0 < first_response_hours <= resolve_hours")
        sla[priority] = SlaTerm(**term)
    labels = {}
    for record_type, name in _table(data.get("labels", {}), "labels").items():
        if record_type not in LABELLED_TYPES:
            raise ConfigError(f"labels.{record_type}", f"unknown record type; expected one of "
                                                       f"{', '.join(LABELLED_TYPES)}")
        labels[record_type] = _string(name, f"labels.{record_type}")[:40]
    from .threads import ThreadingConfig

    threading_data = _table(data.get("threading", {}), "threading")
    _only_keys(threading_data, "threading.", {f.name for f in fields(ThreadingConfig)})
    threading = ThreadingConfig(**{key: _number(value, f"threading.{key}", float)
                                   for key, value in threading_data.items()})
    for f in fields(ThreadingConfig):
        if not getattr(threading, f.name) > 0:
            raise ConfigError(f"threading.{f.name}", "must be greater than zero")
    forms = forms_from_toml(_table(data.get("forms", {}), "forms"), sources)
    api = api_from_toml(_table(data.get("api", {}), "api"))
    return Settings(config_path=config_path, region=region, sources=sources, pipeline=pipeline,
                    scheduler=scheduler, alerts=alerts, matching=matching, sla=sla, labels=labels,
                    threading=threading, forms=forms, api=api)


def _scheduler(raw: Mapping[str, Any]) -> SchedulerConfig:
    _only_keys(raw, "scheduler.", {f.name for f in fields(SchedulerConfig)})
    defaults = SchedulerConfig()
    values: dict[str, Any] = {key: _number(value, f"scheduler.{key}", type(getattr(defaults, key)))
                              for key, value in raw.items() if key != "key_prefix"}
    if "key_prefix" in raw:  # RedBeat appends names straight to it: keep its separator
        values["key_prefix"] = _string(raw["key_prefix"], "scheduler.key_prefix").rstrip(":") + ":"
    scheduler = replace(defaults, **values)
    scheduler.check()
    return scheduler


def _alerts(raw: Mapping[str, Any]) -> AlertsConfig:
    _only_keys(raw, "alerts.", {f.name for f in fields(AlertsConfig)})
    defaults = AlertsConfig()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("webhook_url", "webhook_url_env"):
            values[key] = _string(value, f"alerts.{key}")
        else:
            values[key] = _number(value, f"alerts.{key}", type(getattr(defaults, key)))
    alerts = replace(defaults, **values)
    alerts.check()
    return alerts


def _source(name: str, raw: Mapping[str, Any], base: SourceConfig | None,
            region: str) -> SourceConfig:
    prefix = f"sources.{name}."
    allowed = {f.name for f in fields(SourceConfig)} - {"name"}
    _only_keys(raw, prefix, allowed)
    special = {"review_duplicates", "rules", "min_confidence", "imap", "acknowledge", "twitter", "facebook"}
    values: dict[str, Any] = {key: _string(value, prefix + key) for key, value in raw.items()
                              if key not in special}
    if "review_duplicates" in raw:
        if not isinstance(raw["review_duplicates"], bool):
            raise ConfigError(prefix + "review_duplicates", "must be true or false")
        values["review_duplicates"] = raw["review_duplicates"]
    if "rules" in raw:
        from .routing import rules_from_toml as routing_rules

        values["rules"] = routing_rules(raw["rules"], prefix + "rules")
    if "imap" in raw:
        values["imap"] = _door(_table(raw["imap"], prefix + "imap"), prefix + "imap", ImapConfig,
                               ("host", "user", "password_env"))
    if "twitter" in raw:
        values["twitter"] = _door(_table(raw["twitter"], prefix + "twitter"), prefix + "twitter", TwitterConfig, ())
    if "facebook" in raw:
        values["facebook"] = _door(_table(raw["facebook"], prefix + "facebook"), prefix + "facebook",
                                   FacebookConfig, ())
    if "acknowledge" in raw:
        from .acknowledge import AckConfig

        values["acknowledge"] = _door(_table(raw["acknowledge"], prefix + "acknowledge"), prefix + "acknowledge",
                                      AckConfig, ("smtp_host", "from_address"))
    if "min_confidence" in raw:
        values["min_confidence"] = _number(raw["min_confidence"], prefix + "min_confidence", float)
        if not 0 <= values["min_confidence"] <= 1:
            raise ConfigError(prefix + "min_confidence", "must be between 0 and 1")
    if "region" in values:
        values["region"] = _region(values["region"], prefix + "region")
    source = replace(base or SourceConfig(name, region=region), **values)
    if source.kind not in ITEM_KINDS:
        raise ConfigError(prefix + "kind", f"must be one of {', '.join(ITEM_KINDS)}")
    if source.record_type not in RECORD_TYPES:
        raise ConfigError(prefix + "record_type", f"must be one of {', '.join(RECORD_TYPES)}")
    if source.acknowledge is not None and source.kind != "email":
        raise ConfigError(prefix + "acknowledge", "only an email source (kind = \"email\") acknowledges by mail")
    if source.imap is not None and source.kind != "email":
        raise ConfigError(prefix + "imap", "only an email source (kind = \"email\") polls a mailbox")
    if sum(door is not None for door in (source.imap, source.twitter, source.facebook)) > 1:
        raise ConfigError(prefix + "imap", "a source polls one thing: imap, twitter or facebook")
    if source.twitter is not None and source.kind != "post":
        raise ConfigError(prefix + "twitter", "only a post source (kind = \"post\") polls Twitter/X")
    if source.facebook is not None:
        wanted_kind = "post" if source.facebook.page_id else "leadgen"
        if source.kind != wanted_kind:
            raise ConfigError(prefix + "facebook", f"a Page feed is polled by a kind = \"post\" source, Lead Ads "
                                                   f"forms by a kind = \"leadgen\" source; this one is {source.kind!r}")
    if source.case_origin is not None and source.case_origin not in CASE_ORIGINS:
        raise ConfigError(prefix + "case_origin", f"must be one of {', '.join(CASE_ORIGINS)}")
    if source.lead_source is not None and lead_source_key(source.lead_source) != source.lead_source:
        from crm_ingest.models.records import LEAD_SOURCES

        raise ConfigError(prefix + "lead_source", f"must be one of {', '.join(LEAD_SOURCES)}")
    return source


def _door(raw: Mapping[str, Any], where: str, cls, required: tuple[str, ...]):
    """A table of a door's configuration (a mailbox, an SMTP account) read into `cls`, checked:
    a password is never in the file (its environment variable's name is), numbers by the
    dataclass's field types, and `cls.check(where)` for the rest."""
    if "password" in raw:
        raise ConfigError(f"{where}.password", "never in the file: name the environment variable in password_env")
    kinds = {f.name: f.type for f in fields(cls)}
    _only_keys(raw, where + ".", set(kinds))
    for key in required:
        if key not in raw:
            raise ConfigError(f"{where}.{key}", "required")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = str(kinds[key])
        if kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key}", "must be true or false")
            values[key] = value
        elif kind.startswith("tuple"):
            if not isinstance(value, list) or not all(isinstance(v, (str, int)) and str(v).strip() for v in value):
                raise ConfigError(f"{where}.{key}", "must be a list of strings")
            values[key] = tuple(str(v).strip() for v in value)
        elif kind.startswith("Mapping[str, Mapping"):  # a table of tables of strings, e.g. per form
            if not isinstance(value, Mapping) or not all(
                    isinstance(inner, Mapping) and all(isinstance(v, str) for v in inner.values())
                    for inner in value.values()):
                raise ConfigError(f"{where}.{key}", "must be a table of tables of strings")
            values[key] = {str(k): dict(inner) for k, inner in value.items()}
        elif kind.startswith("Mapping"):
            if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"{where}.{key}", "must be a table of strings")
            values[key] = dict(value)
        elif key.endswith("_id") and isinstance(value, int) and not isinstance(value, bool):
            values[key] = str(value)  # an id written as a number
        elif "int" in kind:
            values[key] = int(_number(value, f"{where}.{key}", int))
        elif "float" in str(kinds[key]):
            values[key] = _number(value, f"{where}.{key}", float)
        elif key == "body":  # a message text keeps its own spacing
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}.body", "must be a non-empty string")
            values[key] = value
        else:
            values[key] = _string(value, f"{where}.{key}")
    config = cls(**values)
    config.check(where)
    return config


_LEAD_SOURCE_SYNONYMS = {
    "list": "purchased_list", "purchased": "purchased_list", "köpt lista": "purchased_list",
    "mässa": "trade_show", "massa": "trade_show", "tradeshow": "trade_show", "website": "web",
    "webb": "web", "webbplats": "web", "referral": "external_referral", "seminarium": "seminar",
    "annons": "advertisement", "ad": "advertisement", "ads": "advertisement",
    "twitter": "social", "facebook": "social", "linkedin": "social", "e_post": "email",
    "e_mail": "email", "mail": "email"}


def lead_source_key(text: Any) -> str | None:
    """A lead source as its option key: 'Trade Show' and 'trade-show' are 'trade_show'; a value
    Dynamics and we do not know is 'other'; nothing is None."""
    if not isinstance(text, str) or not text.strip():
        return None
    return _lead_source_key(text)


@lru_cache(maxsize=4096)  # a list repeats a handful of values on every row
def _lead_source_key(text: str) -> str:
    from crm_ingest.models.records import LEAD_SOURCES

    key = "_".join(text.strip().lower().replace("-", " ").replace("_", " ").split())
    key = _LEAD_SOURCE_SYNONYMS.get(key.replace("_", " "), _LEAD_SOURCE_SYNONYMS.get(key, key))
    return key if key in LEAD_SOURCES else "other"


def _only_keys(data: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(prefix + key, f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a non-empty string")
    return value.strip()


def _number(value: Any, key: str, kind: type) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, "must be a number")
    if kind is int and not isinstance(value, int):
        raise ConfigError(key, "must be a whole number")
    if not math.isfinite(value):
        raise ConfigError(key, "must be a finite number")
    return kind(value)


def _region(value: Any, key: str) -> str:
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(key, f"{value!r} is not a two-letter region phonenumbers knows (e.g. SE, US, GB)")
    return value.upper()
