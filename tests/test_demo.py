"""`ingest demo` on the embedded default: the samples in, a table out, nothing new the second time."""
import json
import os

from tests.conftest import run_cli


def test_demo_ingests_the_samples_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "INGEST_CONFIG")}

    first = json.loads(run_cli(env, "demo", "--json", cwd=tmp_path).stdout)
    second = json.loads(run_cli(env, "demo", "--json", cwd=tmp_path).stdout)

    assert (tmp_path / "ingest.db").exists()
    assert first["this_run"]["landed"] == first["this_run"]["received"] == 41
    # (Sofia Åkesson's form shares a phone number with Åsa Lindström's lead: another person)
    assert first["this_run"]["outcomes"] == {"created": 29, "merged": 4, "appended": 1,
                                             "rejected": 5, "ignored": 2}
    assert second["this_run"]["landed"] == 0 and second["this_run"]["already_landed"] == 41
    assert second["records"] == first["records"]
    assert first["records"]["lead"] == 23 and first["records"]["case"] == 6
    assert second["items"]["by_state"] == {"pending": 0, "processing": 0, "done": 41, "failed": 0}

    table = run_cli(env, "demo", cwd=tmp_path).stdout
    assert "Items by outcome" in table and "Records by type" in table
