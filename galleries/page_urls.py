"""The client portal's pages (HTML). The data behind them comes from the
portal API (/api/v1/portal/); these views only resolve the gallery and
render the page shell."""

from django.urls import path

from galleries import pages, portal_page

app_name = "portal"

urlpatterns = [
    path("g/", pages.entry, name="entry"),
    path("g/<str:code>/", portal_page.gallery, name="gallery"),
    path("s/<slug:slug>/", pages.studio_page, name="studio"),
    path("s/<slug:slug>/logo/", pages.studio_logo, name="logo"),
    path("s/<slug:slug>/covers/<uuid:gallery_id>/", pages.public_cover, name="cover"),
    path("s/<slug:slug>/g/<str:code>/", portal_page.gallery, name="studio-gallery"),
]
