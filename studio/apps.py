from django.apps import AppConfig


class StudioConfig(AppConfig):
    """The project package doubles as the core app: users, studios, API tokens."""

    name = "studio"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from studio import checks  # noqa: F401 - registers the system checks
        from studio.accounts import connect_signals

        connect_signals()
        # Task lines carry the request id that queued them; task metrics, eager runs included.
        from studio import logging as studio_logging
        from studio import metrics

        studio_logging.connect_celery_signals()
        metrics.connect_celery_signals()
