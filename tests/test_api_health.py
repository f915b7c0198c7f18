"""Health checks report the database and the broker as they are."""
from fastapi.testclient import TestClient

from crm_ingest import runtime as runtime_module
from crm_ingest.api.app import app


def test_health_is_ready_on_sqlite_and_unavailable_with_a_dead_broker(sqlite_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("INGEST_CONFIG", raising=False)
    runtime_module._for_pid.cache_clear()
    client = TestClient(app)
    assert client.get("/health/live").json() == {"status": "ok"}
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["checks"] == {"database": "ok"}

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    runtime_module._for_pid.cache_clear()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error")
    runtime_module._for_pid.cache_clear()
