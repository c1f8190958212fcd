"""The audit trail as a hash chain (tokens.domain.chain): each event's place and digest, each
token's head; existing events are linked in the order they were written. And approve with
edits (tokens.domain.proposals): a token's proposal, its schema, what may be edited, its
versions; the version each vote approved."""

from django.db import migrations, models

import tokens.models

BATCH = 500


def link_existing_events(apps, schema_editor):
    from tokens.domain import chain

    Token = apps.get_model("tokens", "Token")
    TokenEvent = apps.get_model("tokens", "TokenEvent")
    with_events = Token.objects.filter(events__isnull=False).distinct().order_by("pk")
    ids = list(with_events.values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        events = TokenEvent.objects.filter(token_id__in=chunk).order_by(
            "token_id", "created_at", "id"
        )
        heads: dict[str, tuple[int, str]] = {}
        changed = []
        for event in events:
            seq, previous = heads.get(event.token_id, (0, chain.GENESIS))
            event.actor_ref = chain.actor_ref(api_key_id=event.api_key_id, user_id=event.user_id)
            event.seq = seq + 1
            event.digest = chain.link(
                previous, event.seq, event.token_id, chain.content_digest(event)
            )
            heads[event.token_id] = (event.seq, event.digest)
            changed.append(event)
        TokenEvent.objects.bulk_update(changed, ["actor_ref", "seq", "digest"], batch_size=BATCH)
        tokens = list(Token.objects.filter(pk__in=chunk).only("pk"))
        for token in tokens:
            token.audit_seq, token.audit_head = heads[token.pk]
        Token.objects.bulk_update(tokens, ["audit_seq", "audit_head"], batch_size=BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0014_join_aap_decisions"),
    ]

    operations = [
        migrations.AddField(
            model_name="token",
            name="audit_seq",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="token",
            name="audit_head",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
        migrations.AddField(
            model_name="tokenevent",
            name="actor_ref",
            field=models.CharField(blank=True, db_default="", default="", max_length=64),
        ),
        migrations.AddField(
            model_name="tokenevent",
            name="seq",
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="tokenevent",
            name="digest",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(link_existing_events, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="tokenevent",
            name="seq",
            field=models.PositiveIntegerField(),
        ),
        migrations.AddConstraint(
            model_name="tokenevent",
            constraint=models.UniqueConstraint(
                fields=("token", "seq"), name="tokenevent_unique_seq"
            ),
        ),
        migrations.AddField(
            model_name="token",
            name="proposal_current_json",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.AddField(
            model_name="token",
            name="proposal_editable",
            field=models.JSONField(blank=True, db_default=True, default=tokens.models.every_field),
        ),
        migrations.AddField(
            model_name="token",
            name="proposal_json",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.AddField(
            model_name="token",
            name="proposal_schema_json",
            field=models.TextField(blank=True, db_default="", default=""),
        ),
        migrations.AddField(
            model_name="token",
            name="proposal_version",
            field=models.PositiveIntegerField(db_default=1, default=1),
        ),
        migrations.AddField(
            model_name="vote",
            name="proposal_version",
            field=models.PositiveIntegerField(db_default=1, default=1),
        ),
        migrations.AlterField(
            model_name="tokenevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("created", "Created"),
                    ("completed", "Completed"),
                    ("timed_out", "Timed out"),
                    ("cancelled", "Cancelled"),
                    ("complete_ignored", "Completion ignored (already resolved)"),
                    ("cancel_ignored", "Cancel ignored (already resolved)"),
                    ("timeout_ignored", "Force timeout ignored (already resolved)"),
                    ("denied", "Action denied"),
                    ("email_sent", "Approval e-mail sent"),
                    ("email_failed", "Approval e-mail failed"),
                    ("link_revoked", "Personal link revoked"),
                    ("voted", "Vote recorded"),
                    ("reminded", "Reminder queued"),
                    ("escalated", "Escalated"),
                    ("extended", "Deadline extended"),
                    ("extend_ignored", "Extension refused (already resolved)"),
                    ("consumed", "Approval consumed"),
                    ("consume_refused", "Consumption refused"),
                    ("outcome_reported", "Outcome reported"),
                    ("auth_failed", "Refused credential"),
                    ("slack_posted", "Slack message posted"),
                    ("slack_failed", "Slack message failed"),
                    ("slack_no_account", "No Slack account (asked by e-mail only)"),
                    ("proposal_edited", "Proposal edited"),
                ],
                max_length=32,
            ),
        ),
    ]
