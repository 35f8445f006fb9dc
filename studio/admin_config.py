from django.contrib.admin.apps import AdminConfig


class StudioAdminConfig(AdminConfig):
    """Replaces django.contrib.admin's default site with the studio-scoped one."""

    default_site = "studio.admin_site.StudioAdminSite"
