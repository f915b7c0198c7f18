"""Beat's schedule and its leader lock as configured: every periodic task expires within its
interval, each polled source has its own, and the lock's timings are checked at start."""
import tomllib

import pytest

from crm_ingest.celeryconfig import beat_schedule_for
from crm_ingest.ingest.errors import ConfigError
from crm_ingest.ingest.settings import SchedulerConfig, from_toml
from crm_ingest.workers.app import app

SOURCES = """
[pipeline]
sweep_interval_seconds = 20

[sources.support]
kind = "email"
[sources.support.imap]
host = "imap.example.com"
user = "support"
password_env = "SUPPORT_IMAP_PASSWORD"
poll_seconds = 45
[sources.support.acknowledge]
smtp_host = "smtp.example.com"
from_address = "support@example.com"

[sources.sales]
kind = "email"
[sources.sales.imap]
host = "imap.example.com"
user = "sales"
password_env = "SALES_IMAP_PASSWORD"

[sources.mentions]
kind = "post"
[sources.mentions.twitter]
mentions_of = "783214"
poll_seconds = 120
"""


def test_each_polled_source_has_its_own_entry_on_its_own_interval():
    schedule = beat_schedule_for(from_toml(tomllib.loads(SOURCES)))

    polls = {name: entry for name, entry in schedule.items() if entry["task"] == "crm_ingest.poll_source"}
    assert {name: (entry["args"], entry["schedule"]) for name, entry in polls.items()} == {
        "poll-support": (("support",), 45.0),
        "poll-sales": (("sales",), 60.0),
        "poll-mentions": (("mentions",), 120.0),
    }
    assert schedule["sweep"]["schedule"] == 20.0
    assert "send-acknowledgements" in schedule


def test_every_periodic_task_expires_within_its_interval_rather_than_piling_up():
    schedule = beat_schedule_for(from_toml(tomllib.loads(SOURCES)))

    assert len(schedule) == 7  # sweep, recheck, roll-up, three polls, acknowledgements
    for name, entry in schedule.items():
        assert 0 < entry["options"]["expires"] <= entry["schedule"], name


def test_without_polled_sources_or_acknowledgements_only_the_housekeeping_runs():
    assert set(beat_schedule_for(from_toml({}))) == {"sweep", "recheck-duplicates", "roll-up"}


def test_beat_runs_the_leader_scheduler_with_the_configured_lock():
    conf = app.conf
    assert conf.beat_scheduler == "crm_ingest.workers.scheduler:LeaderScheduler"
    assert conf.redbeat_lock_timeout >= 2 * conf.beat_max_loop_interval
    assert conf.redbeat_key_prefix.endswith(":")
    assert conf.redbeat_redis_options == {}  # never the broker's visibility timeout


def test_the_scheduler_table_is_read_and_checked():
    settings = from_toml({"scheduler": {"max_loop_seconds": 1, "lock_timeout_seconds": 3,
                                        "key_prefix": "acme:beat"}})
    assert settings.scheduler == SchedulerConfig(max_loop_seconds=1.0, lock_timeout_seconds=3,
                                                 key_prefix="acme:beat:")
    assert from_toml({}).scheduler == SchedulerConfig()


@pytest.mark.parametrize("table, key", [
    ({"lock_timeout_seconds": 5}, "scheduler.lock_timeout_seconds"),  # under 2 x the 5 s loop
    ({"lock_timeout_seconds": 7.5}, "scheduler.lock_timeout_seconds"),
    ({"max_loop_seconds": 0}, "scheduler.max_loop_seconds"),
    ({"key_prefix": " "}, "scheduler.key_prefix"),
    ({"lock_seconds": 10}, "scheduler.lock_seconds"),
])
def test_a_bad_scheduler_setting_names_its_key(table, key):
    with pytest.raises(ConfigError, match=key):
        from_toml({"scheduler": table})
