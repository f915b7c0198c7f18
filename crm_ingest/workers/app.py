"""The Celery app, configured from `crm_ingest.celeryconfig`."""
from celery import Celery

app = Celery("crm_ingest")
app.config_from_object("crm_ingest.celeryconfig")
app.autodiscover_tasks(["crm_ingest.workers"], related_name="tasks", force=True)
