"""Rename teams_membership to studio_membership, now that every app points
at studio.Membership. Foreign keys follow the rename on both databases."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("studio", "0004_membership_moved_from_teams"),
        ("teams", "0002_membership_moved_to_core"),
    ]

    operations = [migrations.AlterModelTable(name="membership", table=None)]
