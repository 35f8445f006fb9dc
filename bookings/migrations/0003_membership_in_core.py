"""Membership moved to the core (studio 0004); state only."""

import django.db.models.deletion
from django.db import migrations, models


def _member():
    return models.ForeignKey(
        blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="studio.membership"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0002_no_double_booking"),
        ("studio", "0004_membership_moved_from_teams"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="booking",
                    name="assigned_members",
                    field=models.ManyToManyField(blank=True, related_name="bookings", to="studio.membership"),
                ),
                migrations.AlterField(
                    model_name="calendarfeed",
                    name="owner",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="calendar_feeds",
                        to="studio.membership",
                    ),
                ),
                migrations.AlterField(model_name="dateoverride", name="member", field=_member()),
                migrations.AlterField(
                    model_name="service",
                    name="members",
                    field=models.ManyToManyField(blank=True, related_name="services", to="studio.membership"),
                ),
                migrations.AlterField(model_name="timeoff", name="member", field=_member()),
                migrations.AlterField(model_name="workinghours", name="member", field=_member()),
            ],
            database_operations=[],
        ),
    ]
