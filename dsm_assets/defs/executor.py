"""Which executor runs the steps: in-process by default, multiprocess on request, Celery workers when a broker is set.

With DSM_CELERY_BROKER (a Redis URL) every step is a Celery task. Tasks are acknowledged late and
rejected when their worker process dies, so the step goes back on the queue and another worker runs it.
When a whole worker (host) dies, nobody rejects its task: Redis redelivers it after the visibility
timeout, DSM_CELERY_VISIBILITY_TIMEOUT seconds (default 3600; keep it above your longest step, or a slow
step runs twice). The run's record lives in the instance storage (Postgres in deploy/dagster.yaml)."""

import os

import dagster as dg


def celery_config_source() -> dict:
    """Celery settings for the executor and the workers (they must agree)."""
    timeout = int(os.environ.get("DSM_CELERY_VISIBILITY_TIMEOUT") or 3600)
    return {"task_acks_late": True, "task_reject_on_worker_lost": True, "worker_prefetch_multiplier": 1,
            "broker_transport_options": {"visibility_timeout": timeout}}


def executor_from_env() -> dg.ExecutorDefinition:
    """Celery with a broker; otherwise in-process, unless DSM_EXECUTOR=multiprocess.

    In-process is the local default: each step of the multiprocess executor starts a Python process that
    imports Dagster and this project (seconds each), which dominated small runs launched from the UI."""
    broker = os.environ.get("DSM_CELERY_BROKER")
    if not broker:
        if os.environ.get("DSM_EXECUTOR", "in_process") == "multiprocess":
            return dg.multiprocess_executor
        return dg.in_process_executor
    from dagster_celery import celery_executor  # only deployments with a broker need it

    backend = os.environ.get("DSM_CELERY_BACKEND") or broker
    return celery_executor.configured({"broker": broker, "backend": backend, "config_source": celery_config_source()})
