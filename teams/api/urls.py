from rest_framework.routers import SimpleRouter

from teams.api import views

router = SimpleRouter(use_regex_path=False)
router.register("members", views.MembershipViewSet, basename="member")
router.register("teams", views.TeamViewSet, basename="team")
router.register("invitations", views.InvitationViewSet, basename="invitation")

urlpatterns = router.urls
