"""District officers become chain posts (issue 20 item 9): each ``DistrictOfficer`` row turns
into a held ``chain.Position`` of type ``district_officer`` over the District with its
``district_code``, then the model goes. Nothing else is created: a row whose code names no
District is not carried over (said on the console). Reversed: each held district post becomes a
row again and the posts go (chain 0003 cannot be reversed while they exist)."""

from django.db import migrations
from django.utils import timezone

DISTRICT_OFFICER = "district_officer"


def to_positions(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    DistrictOfficer = apps.get_model("community", "DistrictOfficer")
    District = apps.get_model("territory", "District")
    Position = apps.get_model("chain", "Position")
    districts = {d.code: d for d in District.objects.all()}
    now = timezone.now()
    for row in DistrictOfficer.objects.order_by("id"):
        district = districts.get(row.district_code)
        if district is None:
            print(
                f"\n  district officer {row.member_id}: no District with code "
                f"{row.district_code!r}: not carried over"
            )
            continue
        held = Position.objects.filter(
            position_type=DISTRICT_OFFICER, member_id=row.member_id, district=district
        ).filter(valid_to__isnull=True)
        if not held.exists():
            Position.objects.create(
                position_type=DISTRICT_OFFICER,
                member_id=row.member_id,
                district=district,
                valid_from=now,
                note="from DistrictOfficer",
            )


def to_rows(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    DistrictOfficer = apps.get_model("community", "DistrictOfficer")
    Position = apps.get_model("chain", "Position")
    posts = Position.objects.filter(position_type=DISTRICT_OFFICER)
    now = timezone.now()
    for p in (
        posts.filter(valid_from__lte=now).exclude(valid_to__lte=now).select_related("district")
    ):
        DistrictOfficer.objects.get_or_create(
            member_id=p.member_id,
            district_code=p.district.code,
            defaults={"district_name": p.district.name},
        )
    posts.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("community", "0008_venue_visit_fix_photos"),
        ("chain", "0003_district_officer"),
        ("territory", "0003_district_street_district"),
    ]

    operations = [
        migrations.RunPython(to_positions, to_rows),
        migrations.DeleteModel(name="DistrictOfficer"),
    ]
