from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The core records through studio.auditing and imports no app: this
        # app is what stores the events.
        from audit.services import write_event
        from studio.auditing import register_writer

        register_writer(write_event)
