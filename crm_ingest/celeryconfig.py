"""Celery configuration from our settings: broker, queues, routes, schedule, reliability."""
from kombu import Exchange, Queue

from crm_ingest.ingest.settings import Settings
from crm_ingest.workers.queues import QUEUES


def beat_schedule_for(settings: Settings) -> dict[str, dict]:
    """The periodic tasks: the sweeper, the duplicate re-check, each polled source on its own
    interval, the acknowledgements. Each expires after its interval: a run that could not start
    in time is dropped, not piled up behind the next."""
    def every(seconds: float, task: str, *args: str) -> dict:
        return {"task": task, "args": args, "schedule": seconds, "options": {"expires": seconds}}

    schedule = {
        "sweep": every(settings.pipeline.sweep_interval_seconds, "crm_ingest.sweep"),
        "recheck-duplicates": every(300.0, "crm_ingest.recheck_duplicates"),  # slipped past the online check
        "roll-up": every(60.0, "crm_ingest.roll_up"),  # per-minute counts for history, and the alert checks
    }
    for name, source in settings.sources.items():
        if source.polled is not None:
            schedule[f"poll-{name}"] = every(source.polled.poll_seconds, "crm_ingest.poll_source", name)
    if any(source.acknowledge for source in settings.sources.values()):
        schedule["send-acknowledgements"] = every(30.0, "crm_ingest.send_acknowledgements")
    return schedule


_settings = Settings.load()
_pipeline = _settings.pipeline

broker_url = _settings.redis_url or "memory://"
broker_connection_retry_on_startup = True
# Unacked messages come back after this; it must outlast any task, or a slow task runs twice.
broker_transport_options = {"visibility_timeout": _pipeline.lease_seconds + 60}
# A publish gives up in about a second when the broker does not answer: what is published is
# already landed, and the sweeper sends it on later (a web form's answer must not hang on it)
task_publish_retry_policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
broker_connection_timeout = 2

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
    "crm_ingest.process_chunk": {"queue": "process"},
    "crm_ingest.sweep": {"queue": "poll"},
    "crm_ingest.recheck_duplicates": {"queue": "poll"},
    "crm_ingest.poll_source": {"queue": "poll"},
    "crm_ingest.send_acknowledgements": {"queue": "poll"},
    "crm_ingest.roll_up": {"queue": "poll"},  # never behind the backlog it reports on
}
beat_schedule = beat_schedule_for(_settings)
# One beat acts however many run (crm_ingest.workers.scheduler): the lock holder renews its lock
# every loop; a standby takes over once a dead holder's lock lapses.
beat_scheduler = "crm_ingest.workers.scheduler:LeaderScheduler"
beat_max_loop_interval = _settings.scheduler.max_loop_seconds
redbeat_redis_url = _settings.redis_url  # the broker's database: a deployment's keys stay together
redbeat_redis_options: dict = {}  # not the broker's transport options (RedBeat would borrow them)
redbeat_key_prefix = _settings.scheduler.key_prefix
redbeat_lock_timeout = _settings.scheduler.lock_timeout_seconds
worker_send_task_events = True  # Flower and `celery events` see our tasks
task_send_sent_event = True
