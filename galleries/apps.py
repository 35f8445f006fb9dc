from django.apps import AppConfig


class GalleriesConfig(AppConfig):
    name = "galleries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the beat tasks of galleries/maintenance.py: Celery's
        # autodiscovery imports only tasks.py.
        from galleries import maintenance  # noqa: F401
