"""/api/v1/ routes of the teams app outside any studio: the token names it."""

from django.urls import path

from teams.api.views import InvitationAcceptView

urlpatterns = [
    path("invitations/accept/", InvitationAcceptView.as_view(), name="invitation-accept"),
]
