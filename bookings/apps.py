from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bookings.notifications import reminder_delivered
        from studio.emails import email_sent

        email_sent.connect(reminder_delivered, dispatch_uid="bookings.reminder_delivered")
