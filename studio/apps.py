from django.apps import AppConfig


class StudioConfig(AppConfig):
    """The project package doubles as the core app: users, studios, API tokens."""

    name = "studio"
    verbose_name = "Platform"
    default_auto_field = "django.db.models.BigAutoField"
