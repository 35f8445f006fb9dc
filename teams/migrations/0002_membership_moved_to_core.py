"""Membership now lives in the core (studio.Membership); state only, the
table is renamed by studio 0005."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("teams", "0001_initial"),
        ("studio", "0004_membership_moved_from_teams"),
        ("bookings", "0003_membership_in_core"),
        ("galleries", "0002_membership_in_core"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="teammember",
                    name="membership",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="team_members",
                        to="studio.membership",
                    ),
                ),
                migrations.AlterField(
                    model_name="team",
                    name="members",
                    field=models.ManyToManyField(
                        blank=True, related_name="teams", through="teams.TeamMember", to="studio.membership"
                    ),
                ),
                migrations.DeleteModel(name="Membership"),
            ],
            database_operations=[],
        ),
    ]
