"""Delivery lanes and leases: which process holds a claim (renewed while it lives) and what
shares a concurrency cap and a circuit breaker (one webhook endpoint, e-mail, Slack, …)."""

from django.db import migrations, models


def lanes_for_pending(apps, schema_editor):
    # The rule of delivery.outbox at the time of this migration, for rows still to be sent.
    outbox = apps.get_model("tokens", "OutboxMessage")
    pending = outbox.objects.filter(delivered_at__isnull=True, failed_at__isnull=True)
    for row in pending.only("pk", "kind", "payload").iterator():
        if row.kind == "webhook":
            lane = f"webhook:{(row.payload or {}).get('endpoint', '')}"
        elif row.kind.startswith("slack_"):
            lane = "slack"
        else:
            lane = row.kind
        outbox.objects.filter(pk=row.pk).update(lane=lane[:120])


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", '0016_join_decisions_edits'),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxmessage",
            name="claimed_by",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="lane",
            field=models.CharField(blank=True, default="", max_length=120),
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(
                    ("claimed_until__isnull", False),
                    ("delivered_at__isnull", True),
                    ("failed_at__isnull", True),
                ),
                fields=["claimed_until"],
                name="outbox_in_flight",
            ),
        ),
        migrations.RunPython(lanes_for_pending, migrations.RunPython.noop),
    ]
