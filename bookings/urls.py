from django.urls import path

from bookings import views

app_name = "bookings"

urlpatterns = [
    path("calendar/<str:token>.ics", views.calendar_feed, name="calendar-feed"),
    path("book/<slug:slug>/", views.book, name="book"),
    path("book/manage/<str:token>/", views.manage, name="manage"),
    path("contact/<slug:slug>/", views.contact, name="contact"),
]
