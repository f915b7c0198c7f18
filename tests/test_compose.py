"""docker-compose.yml cannot run here (no Docker engine): check it agrees with the CLI instead."""
from pathlib import Path

import click
import pytest
import yaml

from crm_ingest.cli import main
from crm_ingest.ingest.settings import from_toml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
OUR_SERVICES = [name for name, svc in COMPOSE["services"].items() if svc.get("image") == "crm-ingest:latest"]


def test_the_stack_has_every_role():
    assert set(COMPOSE["services"]) >= {"postgres", "redis", "migrate", "worker", "beat", "api", "flower"}
    assert set(OUR_SERVICES) == {"migrate", "worker", "beat", "api"}


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_every_command_our_services_run_exists_with_its_options(service):
    command = COMPOSE["services"][service]["command"]
    assert command[0] == "ingest"
    sub = main.commands.get(command[1])
    assert sub is not None, f"{service} runs unknown command {command[1]!r}"
    ctx = sub.make_context(command[1], list(command[2:]), parent=click.Context(main))
    assert not ctx.args, f"{service} passes arguments the command does not declare: {ctx.args}"


def test_redis_persists_and_never_evicts():
    command = " ".join(COMPOSE["services"]["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command


def test_the_mounted_configuration_is_valid():
    import tomllib

    from_toml(tomllib.loads((ROOT / "deploy" / "ingest.toml").read_text()))
    env = COMPOSE["x-app"]["environment"]
    assert {"DATABASE_URL", "REDIS_URL", "INGEST_CONFIG"} <= set(env)


def test_the_migration_runs_before_workers_beat_and_api():
    for service in ("worker", "beat", "api"):
        depends = COMPOSE["services"][service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
