"""Membership moved to the core (studio 0004); state only."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("galleries", "0001_initial"),
        ("studio", "0004_membership_moved_from_teams"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="gallery",
                    name="assigned_members",
                    field=models.ManyToManyField(
                        blank=True, related_name="assigned_galleries", to="studio.membership"
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
