from django.urls import path

from teams import views

app_name = "teams"

urlpatterns = [
    path("<str:token>/", views.invitation_accept, name="invitation-accept"),
]
