"""Settings: an injected environment mapping plus ingest.toml, checked at load, naming the bad key."""
from __future__ import annotations

from pathlib import Path

import pytest

from crm_ingest.ingest.errors import ConfigError, FatalError
from crm_ingest.ingest.settings import PipelineConfig, Settings


@pytest.fixture
def in_empty_folder(tmp_path, monkeypatch) -> Path:
    """The working directory holds no ingest.toml, so only what a test writes is read."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config(folder: Path, text: str, name: str = "ingest.toml") -> dict[str, str]:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return {"INGEST_CONFIG": str(path)}


def config_error(env: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        Settings.load(env)
    return raised.value


# -- defaults and environment -------------------------------------------------------------------


def test_defaults_when_there_is_no_file_and_an_empty_environment(in_empty_folder):
    # Given no ingest.toml and no variables
    # When the settings are loaded
    settings = Settings.load({})
    # Then they are the embedded SQLite defaults with the built-in sources
    assert settings.database_url == "sqlite:///ingest.db"
    assert settings.redis_url is None
    assert settings.embedded
    assert settings.config_path is None
    assert settings.region == "SE"
    assert settings.pipeline == PipelineConfig()
    assert set(settings.sources) == {"list", "mail", "web", "twitter", "facebook", "facebook_leads"}
    assert settings.source("mail").kind == "email"
    assert settings.source("mail").record_type == "auto"  # the classifier reads mail and posts
    assert [rule.retweet for rule in settings.source("twitter").rules] == [True]  # shares are ignored


def test_database_and_redis_urls_come_from_the_given_mapping(in_empty_folder):
    # Given an environment mapping naming a database and a broker
    env = {"DATABASE_URL": "postgresql://crm@db/crm", "REDIS_URL": "redis://cache:6379/0"}
    # When the settings are loaded from it
    settings = Settings.load(env)
    # Then both are used, and with a broker the work is not embedded
    assert settings.database_url == "postgresql://crm@db/crm"
    assert settings.redis_url == "redis://cache:6379/0"
    assert not settings.embedded


def test_empty_redis_url_means_embedded(in_empty_folder):
    settings = Settings.load({"REDIS_URL": "", "DATABASE_URL": ""})
    assert settings.redis_url is None
    assert settings.embedded
    assert settings.database_url == "sqlite:///ingest.db"


def test_the_process_environment_is_not_read_when_a_mapping_is_given(in_empty_folder, monkeypatch):
    # Given variables in the process environment
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-os-environ/crm")
    monkeypatch.setenv("REDIS_URL", "redis://from-os-environ")
    # When the settings are loaded from an empty mapping
    settings = Settings.load({})
    # Then the process environment played no part
    assert settings.database_url == "sqlite:///ingest.db"
    assert settings.redis_url is None


def test_ingest_toml_in_the_working_directory_is_read_without_ingest_config(in_empty_folder):
    # Given an ingest.toml in the working directory and no INGEST_CONFIG
    (in_empty_folder / "ingest.toml").write_text('region = "GB"\n', encoding="utf-8")
    # When the settings are loaded
    settings = Settings.load({})
    # Then the file is read
    assert settings.region == "GB"
    assert settings.config_path == Path("ingest.toml")
    assert settings.source("list").region == "GB"


def test_file_named_by_ingest_config_is_read(in_empty_folder):
    # Given a config file somewhere else, named by INGEST_CONFIG
    env = config(in_empty_folder, "[pipeline]\nbatch_size = 50\nretry_backoff_seconds = 2.5\n",
                 name="elsewhere.toml")
    # When the settings are loaded
    settings = Settings.load(env)
    # Then its values are used and the rest keep their defaults
    assert settings.config_path == in_empty_folder / "elsewhere.toml"
    assert settings.pipeline.batch_size == 50
    assert settings.pipeline.retry_backoff_seconds == 2.5
    assert settings.pipeline.max_attempts == PipelineConfig().max_attempts


def test_whole_number_for_a_float_setting_is_accepted_as_float(in_empty_folder):
    settings = Settings.load(config(in_empty_folder, "[pipeline]\nretry_backoff_seconds = 3\n"))
    assert settings.pipeline.retry_backoff_seconds == 3.0
    assert isinstance(settings.pipeline.retry_backoff_seconds, float)


def test_ingest_config_pointing_at_a_missing_file_is_a_config_error(in_empty_folder):
    # Given INGEST_CONFIG naming a file that does not exist
    missing = in_empty_folder / "nope.toml"
    # When the settings are loaded
    error = config_error({"INGEST_CONFIG": str(missing)})
    # Then the error names INGEST_CONFIG and the file, and is fatal (not retried)
    assert error.key == "INGEST_CONFIG"
    assert str(missing) in error.reason
    assert isinstance(error, FatalError)


@pytest.mark.parametrize("value", ["", "."])
def test_ingest_config_pointing_at_a_directory_is_a_config_error(in_empty_folder, value):
    assert config_error({"INGEST_CONFIG": value}).key == "INGEST_CONFIG"


def test_file_that_is_not_toml_is_a_config_error_naming_the_file(in_empty_folder):
    env = config(in_empty_folder, "[pipeline\nbatch_size = \n")
    error = config_error(env)
    assert error.key == env["INGEST_CONFIG"]
    assert "not valid TOML" in error.reason


# -- each wrong key is named exactly -------------------------------------------------------------


@pytest.mark.parametrize("text, key", [
    ('colour = "blue"\n', "colour"),
    ('[pipline]\nbatch_size = 5\n', "pipline"),
    ("[pipeline]\nbatch_sise = 5\n", "pipeline.batch_sise"),
    ('[sources.shop]\nkind = "row"\nrecord = "lead"\n', "sources.shop.record"),
    ('[sources.list]\nname = "other"\n', "sources.list.name"),
], ids=["top-level", "misspelt-table", "pipeline", "source", "source-name-is-not-settable"])
def test_unknown_key_is_a_config_error_naming_the_dotted_key(in_empty_folder, text, key):
    # Given a config with one key the project does not know
    # When it is loaded
    error = config_error(config(in_empty_folder, text))
    # Then the error names exactly that key, and what was expected
    assert error.key == key
    assert error.reason.startswith("unknown key; expected one of")
    assert str(error).startswith(f"{key}: ")


@pytest.mark.parametrize("text, key", [
    ('[sources.shop]\nkind = "fax"\n', "sources.shop.kind"),
    ('[sources.shop]\nrecord_type = "deal"\n', "sources.shop.record_type"),
    ('[sources.shop]\nregion = "XX"\n', "sources.shop.region"),
    ('[sources.shop]\ncase_origin = "pigeon"\n', "sources.shop.case_origin"),
    ('[sources.shop]\ncampaign = 5\n', "sources.shop.campaign"),
    ('[sources.shop]\nlead_source = "  "\n', "sources.shop.lead_source"),
    ('region = "Sweden"\n', "region"),
    ('region = 46\n', "region"),
    ('sources = "list"\n', "sources"),
    ('pipeline = 5\n', "pipeline"),
    ('[sources]\nshop = "csv"\n', "sources.shop"),
])
def test_bad_value_is_a_config_error_naming_the_dotted_key(in_empty_folder, text, key):
    assert config_error(config(in_empty_folder, text)).key == key


@pytest.mark.parametrize("text, key, reason", [
    ('[pipeline]\nbatch_size = "500"\n', "pipeline.batch_size", "must be a number"),
    ("[pipeline]\nmax_attempts = true\n", "pipeline.max_attempts", "must be a number"),
    ("[pipeline]\nbatch_size = 2.5\n", "pipeline.batch_size", "must be a whole number"),
    ('[pipeline]\nsweep_interval_seconds = "30s"\n', "pipeline.sweep_interval_seconds", "must be a number"),
    ("[pipeline]\nbatch_size = 0\n", "pipeline.batch_size", "must be greater than zero"),
    ("[pipeline]\nretry_backoff_seconds = -1.0\n", "pipeline.retry_backoff_seconds",
     "must be greater than zero"),
])
def test_bad_pipeline_value_is_a_config_error_naming_the_key(in_empty_folder, text, key, reason):
    error = config_error(config(in_empty_folder, text))
    assert error.key == key
    assert error.reason == reason


@pytest.mark.parametrize("lease", [240, 100])
def test_lease_not_longer_than_the_task_time_limit_is_a_config_error(in_empty_folder, lease):
    # Given a lease that would expire before a slow task is killed
    text = f"[pipeline]\nlease_seconds = {lease}\ntask_time_limit_seconds = 240\n"
    # When it is loaded
    error = config_error(config(in_empty_folder, text))
    # Then the lease is named, with the setting it must exceed
    assert error.key == "pipeline.lease_seconds"
    assert "pipeline.task_time_limit_seconds" in error.reason


def test_lease_one_second_longer_than_the_task_time_limit_is_accepted(in_empty_folder):
    text = "[pipeline]\nlease_seconds = 241\ntask_time_limit_seconds = 240\n"
    assert Settings.load(config(in_empty_folder, text)).pipeline.lease_seconds == 241


def test_nan_pipeline_value_is_a_config_error(in_empty_folder):
    text = "[pipeline]\nsweep_interval_seconds = nan\n"
    assert config_error(config(in_empty_folder, text)).key == "pipeline.sweep_interval_seconds"


# -- sources ------------------------------------------------------------------------------------


def test_configured_source_overrides_only_the_keys_it_sets_on_a_builtin(in_empty_folder):
    # Given ingest.toml setting a campaign and a region on the built-in `list` source
    text = '[sources.list]\ncampaign = "Nordic Expo 2026"\nregion = "NO"\n'
    # When it is loaded
    source = Settings.load(config(in_empty_folder, text)).source("list")
    # Then those keys change and the built-in's others stay
    assert source.campaign == "Nordic Expo 2026"
    assert source.region == "NO"
    assert source.kind == "row"
    assert source.record_type == "lead"
    assert source.lead_source == "purchased_list"


def test_new_source_starts_from_the_defaults_and_the_top_level_region(in_empty_folder):
    text = 'region = "DK"\n[sources.shop]\nkind = "form"\nlead_source = "web"\n'
    settings = Settings.load(config(in_empty_folder, text))
    shop = settings.source("shop")
    assert (shop.name, shop.kind, shop.record_type, shop.region, shop.lead_source) == \
        ("shop", "form", "lead", "DK", "web")
    assert settings.source("list").region == "DK"


def test_source_values_are_trimmed(in_empty_folder):
    env = config(in_empty_folder, '[sources.shop]\ncampaign = "  Spring  "\n')
    source = Settings.load(env).source("shop")
    assert source.campaign == "Spring"


def test_source_region_in_lower_case_is_stored_upper_case(in_empty_folder):
    source = Settings.load(config(in_empty_folder, '[sources.uk]\nregion = "gb"\n')).source("uk")
    assert source.region == "GB"


def test_top_level_region_in_lower_case_is_stored_upper_case(in_empty_folder):
    assert Settings.load(config(in_empty_folder, 'region = "no"\n')).region == "NO"


def test_unknown_source_is_a_config_error_listing_the_known_ones(in_empty_folder):
    # Given the built-ins plus one configured source
    settings = Settings.load(config(in_empty_folder, '[sources.shop]\nkind = "form"\n'))
    # When an unknown name is asked for
    with pytest.raises(ConfigError) as raised:
        settings.source("nope")
    # Then the error names the option and the name, and lists every known source
    assert raised.value.key == "--source"
    assert "'nope'" in raised.value.reason
    assert "configured: facebook, facebook_leads, list, mail, shop, twitter, web" in raised.value.reason


def test_settings_are_read_only(in_empty_folder):
    settings = Settings.load({})
    with pytest.raises(AttributeError):
        settings.database_url = "sqlite:///other.db"  # type: ignore[misc]


# -- matching rules ----------------------------------------------------------------------------------

def test_matching_rules_are_read_from_the_config(in_empty_folder):
    text = '[matching.lead-lead]\nmerge_threshold = 0.95\nreview_threshold = 0.9\n'
    settings = Settings.load(config(in_empty_folder, text))
    assert (settings.matching["lead-lead"].merge_threshold, settings.matching["lead-lead"].review_threshold) == (
        0.95, 0.9)


@pytest.mark.parametrize("text, key", [
    ('[matching.lead-lead]\nmerge_threshold = "high"\n', "matching.lead-lead.merge_threshold"),
    ('[matching.lead-lead]\nconditions = [{field = "email", op = "soundex"}]\n',
     "matching.lead-lead.conditions[0].op"),
    ('[matching.lead-prospect]\nmerge_threshold = 0.9\n', "matching.lead-prospect"),
])
def test_a_bad_matching_rule_is_a_config_error_naming_its_key(in_empty_folder, text, key):
    error = config_error(config(in_empty_folder, text))
    assert error.key == key, str(error)


def test_rows_do_not_review_duplicates_unless_configured_to(in_empty_folder):
    text = '[sources.expo]\nkind = "row"\n\n[sources.crm]\nkind = "row"\nreview_duplicates = true\n'
    settings = Settings.load(config(in_empty_folder, text))
    assert not settings.source("expo").reviews_duplicates and settings.source("crm").reviews_duplicates
    assert settings.source("web").reviews_duplicates and settings.source("mail").reviews_duplicates


def test_review_duplicates_must_be_a_boolean(in_empty_folder):
    error = config_error(config(in_empty_folder, '[sources.expo]\nkind = "row"\nreview_duplicates = "yes"\n'))
    assert error.key == "sources.expo.review_duplicates"


def test_lead_sources_are_dynamics_options_and_ours(in_empty_folder):
    from crm_ingest.ingest.errors import ConfigError
    from crm_ingest.ingest.settings import lead_source_key

    assert [lead_source_key(t) for t in ("Trade Show", "trade-show", "Mässa", "Word of mouth", "LinkedIn",
                                         "Purchased list", "something odd", "  ", None)] == [
        "trade_show", "trade_show", "trade_show", "word_of_mouth", "social", "purchased_list", "other",
        None, None]
    with pytest.raises(ConfigError) as error:
        Settings.load(config(in_empty_folder, '[sources.shop]\nlead_source = "webshop"\n'))
    assert error.value.key == "sources.shop.lead_source" and "trade_show" in error.value.reason


IMAP = '[sources.support]\nkind = "email"\n[sources.support.imap]\nhost = "imap.example"\nuser = "support"\n'


@pytest.mark.parametrize("extra, key, reason", [
    ('password_env = "PW"\npassword = "hunter2"\n', "sources.support.imap.password", "never in the file"),
    ("", "sources.support.imap.password_env", "required"),
    ('password_env = "PW"\ntls = "maybe"\n', "sources.support.imap.tls", "ssl, starttls, none"),
    ('password_env = "PW"\nafter = "move"\n', "sources.support.imap.move_to", "required"),
    ('password_env = "PW"\nafter = "delete"\n', "sources.support.imap.after", "seen, move, none"),
    ('password_env = "PW"\nport = 70000\n', "sources.support.imap.port", "TCP port"),
])
def test_a_bad_mailbox_names_its_key(in_empty_folder, extra, key, reason):
    from crm_ingest.ingest.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        Settings.load(config(in_empty_folder, IMAP + extra))
    assert error.value.key == key and reason in error.value.reason


def test_a_mailbox_password_comes_from_the_environment_and_is_never_printed(in_empty_folder):
    env = config(in_empty_folder, IMAP + 'password_env = "SUPPORT_PW"\n')
    settings = Settings.load({**env, "SUPPORT_PW": "hunter2"})
    assert settings.secrets == {"SUPPORT_PW": "hunter2"}
    assert "hunter2" not in repr(settings)
    assert settings.source("support").imap.folder == "INBOX"


def test_only_an_email_source_polls_a_mailbox(in_empty_folder):
    from crm_ingest.ingest.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        Settings.load(config(in_empty_folder, IMAP.replace('kind = "email"', 'kind = "form"')
                             + 'password_env = "PW"\n'))
    assert error.value.key == "sources.support.imap"
