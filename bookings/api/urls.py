"""Staff routes, under /api/v1/studios/<studio_slug>/."""

from rest_framework.routers import SimpleRouter

from bookings.api import views

router = SimpleRouter(use_regex_path=False)
router.register("services", views.ServiceViewSet, basename="service")
router.register("working-hours", views.WorkingHoursViewSet, basename="working-hours")
router.register("date-overrides", views.DateOverrideViewSet, basename="date-override")
router.register("time-off", views.TimeOffViewSet, basename="time-off")
router.register("bookings", views.BookingViewSet, basename="booking")
router.register("contact-submissions", views.ContactSubmissionViewSet, basename="contact-submission")
router.register("calendar-feeds", views.CalendarFeedViewSet, basename="calendar-feed")

urlpatterns = router.urls
