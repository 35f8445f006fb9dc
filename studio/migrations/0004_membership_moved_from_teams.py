"""Membership moves from the teams app into the core: tenancy is resolved
from memberships and roles, so the core must not import an app to find them.

The table is kept as it is (state-only move); 0005 renames it once every
other app points at studio.Membership."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import studio.ids


def move_content_type(apps, schema_editor):
    # Keeps admin log entries and permissions attached to the moved model.
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="studio", model="membership").exists():
        ContentType.objects.filter(app_label="teams", model="membership").update(app_label="studio")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("studio", "0003_studio_booking_cancellation_hours"),
        ("teams", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Membership",
                    fields=[
                        (
                            "id",
                            models.UUIDField(default=studio.ids.uuid7, editable=False, primary_key=True, serialize=False),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(db_index=True, default=django.utils.timezone.now, editable=False),
                        ),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "role",
                            models.CharField(
                                choices=[
                                    ("viewer", "Viewer"),
                                    ("assistant", "Assistant"),
                                    ("photographer", "Photographer"),
                                    ("admin", "Admin"),
                                    ("owner", "Owner"),
                                ],
                                max_length=20,
                            ),
                        ),
                        (
                            "studio",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to="studio.studio",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="memberships",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["created_at"],
                        "db_table": "teams_membership",
                        "constraints": [
                            models.UniqueConstraint(fields=("studio", "user"), name="membership_unique_user")
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_type, migrations.RunPython.noop),
    ]
