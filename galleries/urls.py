from django.urls import path

from galleries import views

app_name = "galleries"

urlpatterns = [
    path("local/", views.local_upload, name="local-upload"),
]
