"""On PostgreSQL the database itself refuses a double booking: no two live
bookings (held, awaiting payment, confirmed) of the same studio and resource
may overlap in [blocked_start, blocked_end). Expired holds are moved out of
the live statuses (services.holds_release) before new ones are taken.

btree_gist lets the constraint mix equality on ids with range overlap; it
ships with PostgreSQL (contrib) and needs CREATE privilege on the database
the first time. SQLite serialises writers instead (transaction_mode=IMMEDIATE
in settings), so check-then-insert is safe there.
"""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE bookings_booking ADD CONSTRAINT booking_no_overlap EXCLUDE USING gist (
    studio_id WITH =,
    resource WITH =,
    tstzrange(blocked_start, blocked_end, '[)') WITH &&
) WHERE (status IN ('held', 'awaiting_payment', 'confirmed'));
"""

DROP = "ALTER TABLE bookings_booking DROP CONSTRAINT IF EXISTS booking_no_overlap;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
