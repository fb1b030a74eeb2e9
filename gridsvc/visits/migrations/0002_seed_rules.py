"""Seed the default visit rules (data migration; later edits in the admin are kept)."""

from django.db import migrations


def seed(apps, schema_editor):
    from gridsvc.visits.defaults import DEFAULT_RULES

    VisitRule = apps.get_model("visits", "VisitRule")
    for spec in DEFAULT_RULES:
        fields = dict(spec)
        VisitRule.objects.get_or_create(code=fields.pop("code"), defaults=fields)


def unseed(apps, schema_editor):
    from gridsvc.visits.defaults import DEFAULT_RULES

    VisitRule = apps.get_model("visits", "VisitRule")
    VisitRule.objects.filter(code__in=[r["code"] for r in DEFAULT_RULES], tasks__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("visits", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
