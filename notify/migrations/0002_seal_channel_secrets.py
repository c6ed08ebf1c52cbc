"""Webhook signing secrets move from plain text to sealed tokens (valhalla_ops.sealing)."""

from django.db import migrations

import notify.models
import valhalla_ops.sealing
from valhalla_ops.sealing import is_sealed, seal, unseal

TABLE = "notify_notificationchannel"


def _rewrite(schema_editor, convert) -> None:
    # Raw SQL: the historical model's field would try to unseal plain text on the way in.
    connection = schema_editor.connection
    table, column = connection.ops.quote_name(TABLE), connection.ops.quote_name("secret")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, {column} FROM {table}")
        rows = cursor.fetchall()
        for pk, value in rows:
            new = convert(value)
            if new != value:
                cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [new, pk])


def seal_plain_secrets(apps, schema_editor) -> None:
    _rewrite(schema_editor, lambda value: value if not value or is_sealed(value) else seal(value))


def unseal_secrets(apps, schema_editor) -> None:
    _rewrite(schema_editor, lambda value: unseal(value) if value and is_sealed(value) else value)


class Migration(migrations.Migration):
    dependencies = [
        ("notify", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="notificationchannel",
            name="secret",
            field=valhalla_ops.sealing.SealedTextField(
                default=notify.models.generate_secret,
                editable=False,
                help_text="Webhook signing key, sealed at rest.",
            ),
        ),
        migrations.RunPython(seal_plain_secrets, unseal_secrets, elidable=False),
    ]
