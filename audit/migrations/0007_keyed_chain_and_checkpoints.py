"""Key the audit chain and remember the last checkpoint of each head.

Events already stored were hashed with plain SHA-256: they get the legacy key
id, which adding the column with that default does without rewriting a hash or
running an UPDATE (PostgreSQL fills a constant default without touching the
rows, so the append-only trigger is not involved). History is never re-chained.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_actor_type_anonymous")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(default="sha256", editable=False, max_length=16),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="checkpoint_seq",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="auditchainhead",
            name="checkpoint_hash",
            field=models.CharField(
                default="0000000000000000000000000000000000000000000000000000000000000000", max_length=64
            ),
        ),
    ]
