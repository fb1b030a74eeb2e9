"""Case events are append-only (the database refuses UPDATE and DELETE of their rows), and the
category rules, time limits, flag rules and outside departments are seeded."""

from django.db import migrations

SQL = """
CREATE SEQUENCE IF NOT EXISTS cases_case_number_seq;
CREATE OR REPLACE FUNCTION cases_event_refuse_change() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'case events are append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER cases_event_no_update_delete
  BEFORE UPDATE OR DELETE ON cases_caseevent
  FOR EACH ROW EXECUTE FUNCTION cases_event_refuse_change();
"""

REVERSE = """
DROP TRIGGER IF EXISTS cases_event_no_update_delete ON cases_caseevent;
DROP FUNCTION IF EXISTS cases_event_refuse_change();
DROP SEQUENCE IF EXISTS cases_case_number_seq;
"""


def seed(apps, schema_editor):
    from gridsvc.cases.defaults import seed as do_seed

    do_seed(
        apps.get_model("cases", "Category"),
        apps.get_model("cases", "TimeLimit"),
        apps.get_model("cases", "FlagRule"),
        apps.get_model("cases", "Department"),
    )


class Migration(migrations.Migration):
    dependencies = [("cases", "0001_initial")]
    operations = [
        migrations.RunSQL(SQL, REVERSE),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
