"""Celery configuration from our settings: broker, queues, routes, schedule, reliability."""
from kombu import Exchange, Queue

from crm_ingest.ingest.settings import Settings
from crm_ingest.workers.queues import QUEUES

_settings = Settings.load()
_pipeline = _settings.pipeline

broker_url = _settings.redis_url or "memory://"
broker_connection_retry_on_startup = True
# Unacked messages come back after this; it must outlast any task, or a slow task runs twice.
broker_transport_options = {"visibility_timeout": _pipeline.lease_seconds + 60}

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True  # outcomes live in our database, not in a result backend

task_acks_late = True  # a message is acked when its task ends, so a killed worker's work comes back
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1  # each process holds one batch message at a time, no hoarding
worker_cancel_long_running_tasks_on_connection_loss = True
task_time_limit = _pipeline.task_time_limit_seconds
task_soft_time_limit = max(1, int(_pipeline.task_time_limit_seconds * 0.9))

# Each queue with its own direct exchange and routing key: without them Celery binds every
# queue to the default exchange and key, and a batch published once would be delivered to all.
task_queues = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name)
                    for name in QUEUES)
task_default_queue = "process"
task_default_exchange = "process"
task_default_routing_key = "process"
task_routes = {
    "crm_ingest.process_batch": {"queue": "process"},
    "crm_ingest.sweep": {"queue": "poll"},
    "crm_ingest.recheck_duplicates": {"queue": "poll"},
    "crm_ingest.poll_source": {"queue": "poll"},
    "crm_ingest.send_acknowledgements": {"queue": "poll"},
}
beat_schedule = {
    "sweep": {
        "task": "crm_ingest.sweep",
        "schedule": _pipeline.sweep_interval_seconds,
        "options": {"expires": _pipeline.sweep_interval_seconds},
    },
    "recheck-duplicates": {  # possible duplicates that slipped past the online check
        "task": "crm_ingest.recheck_duplicates",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
}
for _name, _source in _settings.sources.items():  # each polled source on its own interval, expiring, not piling up
    if _source.polled is not None:
        beat_schedule[f"poll-{_name}"] = {"task": "crm_ingest.poll_source", "args": (_name,),
                                          "schedule": _source.polled.poll_seconds,
                                          "options": {"expires": _source.polled.poll_seconds}}
if any(_source.acknowledge for _source in _settings.sources.values()):
    beat_schedule["send-acknowledgements"] = {"task": "crm_ingest.send_acknowledgements", "schedule": 30.0,
                                              "options": {"expires": 30.0}}
worker_send_task_events = True  # Flower and `celery events` see our tasks
task_send_sent_event = True
