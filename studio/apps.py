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
