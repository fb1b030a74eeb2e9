"""Seed the default assessment scheme: 按期处置率 60, 结案率 30, 1−返工率 10; grades A–E."""

from django.db import migrations

from gridsvc.supervision.assessment import DEFAULT_GRADES, DEFAULT_WEIGHTS


def seed(apps, schema_editor):
    Scheme = apps.get_model("supervision", "AssessmentScheme")
    Scheme.objects.get_or_create(
        name="default", defaults={"weights": DEFAULT_WEIGHTS, "grades": DEFAULT_GRADES}
    )


class Migration(migrations.Migration):
    dependencies = [("supervision", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
