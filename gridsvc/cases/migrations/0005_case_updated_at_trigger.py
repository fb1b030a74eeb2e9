"""Every UPDATE of a case moves ``updated_at`` (the page's ``?updated_since=`` poll and the
phone's sync feed read it), not only ``Model.save()`` (``auto_now``): ``QuerySet.update()``,
``save(update_fields=[...])`` without the field (the deadline recompute saves
``deadline_version`` alone) and raw SQL too. A write that sets ``updated_at`` itself (``save()``,
a loader writing history) keeps its value.

``clock_timestamp()``, not ``now()``: both cursors compare the stamp with times taken while
other transactions run — the page asks ``updated_at >= (the Date of its last answer − 60 s)``,
the sync feed ``(updated_at, id) > (the last row it sent)`` — and a row becomes visible only
when its transaction commits. ``now()`` is the transaction's *start*: a change in a
transaction open longer than the page's overlap, or past another change the feed has already
sent, would be stamped behind the cursor and never fetched (and in one transaction every row
gets the same stamp). ``clock_timestamp()`` is the moment the row is written, the latest stamp
the trigger can give — as ``auto_now`` (Python's clock at ``save()``) already does for the
other writes.
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION cases_case_touch_updated_at() RETURNS trigger AS $$
BEGIN
  IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
    NEW.updated_at := clock_timestamp();
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER cases_case_touch_updated_at
  BEFORE UPDATE ON cases_case
  FOR EACH ROW EXECUTE FUNCTION cases_case_touch_updated_at();
"""

REVERSE = """
DROP TRIGGER IF EXISTS cases_case_touch_updated_at ON cases_case;
DROP FUNCTION IF EXISTS cases_case_touch_updated_at();
"""


class Migration(migrations.Migration):
    dependencies = [("cases", "0004_household_head_label_huzhang")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
