"""The masks of a resident's ID number and phone, stored beside the encrypted values (issue
19: the phone's first sync read and decrypted both for every resident only to mask them).
Existing rows are filled here; a row that cannot be decrypted (no keys, other keys) keeps
NULL, which readers treat as "decrypt and mask"."""

from django.db import migrations

import gridsvc.territory.models

BATCH = 5000


def fill_masks(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import InvalidToken

    from gridsvc.territory.codes import mask_id_number, mask_phone

    table = schema_editor.connection.ops.quote_name(
        apps.get_model("territory", "Resident")._meta.db_table
    )
    with schema_editor.connection.cursor() as cur:
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
        if not cur.fetchone()[0]:
            return
        try:
            from gridsvc.crypto import fernet

            keys = fernet()
        except Exception:  # noqa: BLE001 - no keys configured: leave NULL (decrypted on read)
            return

        def opened(token: str | None) -> str | None:
            if not token:
                return token
            return keys.decrypt(token.encode("ascii")).decode("utf-8")

        last = 0
        while True:
            cur.execute(
                f"SELECT id, id_number, phone FROM {table} WHERE id > %s ORDER BY id LIMIT %s",
                [last, BATCH],
            )
            rows = cur.fetchall()
            if not rows:
                return
            last = rows[-1][0]
            ids, ids_masked, phones_masked = [], [], []
            for pk, id_number, phone in rows:
                try:
                    a, b = mask_id_number(opened(id_number)), mask_phone(opened(phone))
                except (InvalidToken, ValueError):
                    continue  # other keys: NULL
                ids.append(pk)
                ids_masked.append(a)
                phones_masked.append(b)
            cur.execute(
                f"""UPDATE {table} r SET id_number_mask = v.a, phone_mask = v.b
                FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::text[]) AS a,
                             unnest(%s::text[]) AS b) v
                WHERE r.id = v.id""",
                [ids, ids_masked, phones_masked],
            )


class Migration(migrations.Migration):
    dependencies = [
        ("territory", "0003_district_street_district"),
    ]

    operations = [
        migrations.AddField(
            model_name="resident",
            name="id_number_mask",
            field=gridsvc.territory.models.MaskField(source="id_number"),
        ),
        migrations.AddField(
            model_name="resident",
            name="phone_mask",
            field=gridsvc.territory.models.MaskField(source="phone"),
        ),
        migrations.RunPython(fill_masks, migrations.RunPython.noop, elidable=True),
    ]
