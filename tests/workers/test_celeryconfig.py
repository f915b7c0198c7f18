"""The reliability settings the foundation depends on, as Celery will read them."""
from crm_ingest.workers.app import app


def test_messages_are_acked_late_and_come_back_when_a_worker_dies():
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_cancel_long_running_tasks_on_connection_loss
    assert conf.worker_prefetch_multiplier == 1


def test_visibility_timeout_outlasts_every_task_time_limit():
    conf = app.conf
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_each_queue_has_its_own_routing_key():
    queues = {q.name: q for q in app.conf.task_queues}
    assert set(queues) == {"poll", "process", "import"}
    assert {q.routing_key for q in queues.values()} == {"poll", "process", "import"}
    assert {q.exchange.name for q in queues.values()} == {"poll", "process", "import"}
    assert app.amqp.router.route({}, "crm_ingest.process_batch")["queue"].name == "process"
    assert app.amqp.router.route({}, "crm_ingest.sweep")["queue"].name == "poll"


def test_the_sweeper_runs_on_the_schedule_and_expires_rather_than_piling_up():
    entry = app.conf.beat_schedule["sweep"]
    assert entry["task"] == "crm_ingest.sweep"
    assert entry["options"]["expires"] <= entry["schedule"]
