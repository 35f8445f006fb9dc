"""The Celery app. Without REDIS_URL, tasks run eagerly in-process
(CELERY_TASK_ALWAYS_EAGER), so the embedded default needs no broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
