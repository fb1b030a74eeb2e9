"""The database guards a resident's stored masks (:class:`~gridsvc.territory.models.MaskField`):
an UPDATE that changes the encrypted ID number or phone without writing its mask in the same
statement (raw SQL, a script, a repair run around the model) sets that mask to NULL, which
every reader takes as "decrypt and mask" — never a stale mask of the old value beside the new
one. The model's own writes (``save()``, ``update``, ``bulk_update``) name the mask column, so
their masks are kept as written.

How "written in the same statement" is told: a column trigger (``BEFORE UPDATE OF
id_number_mask``, resp. ``phone_mask``) fires only when the statement names that column, and
notes the row in a transaction-local setting; the guard, fired after it for the same row
(triggers of a row fire in name order), reads and clears the note. Comparing values instead
would not do: Fernet encrypts a value to a new token on every write, and two numbers can have
the same mask."""

from django.db import migrations

TABLE = "territory_resident"

FORWARD = f"""
CREATE OR REPLACE FUNCTION territory_resident_mask_written() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- TG_ARGV[0]: the mask column this trigger watches
  PERFORM set_config('gridsvc.mask_written_' || TG_ARGV[0], NEW.id::text, true);
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION territory_resident_mask_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  id_written boolean := coalesce(
    current_setting('gridsvc.mask_written_id_number_mask', true), '') = NEW.id::text;
  phone_written boolean := coalesce(
    current_setting('gridsvc.mask_written_phone_mask', true), '') = NEW.id::text;
BEGIN
  IF NEW.id_number IS DISTINCT FROM OLD.id_number AND NOT id_written THEN
    NEW.id_number_mask := NULL;
  END IF;
  IF NEW.phone IS DISTINCT FROM OLD.phone AND NOT phone_written THEN
    NEW.phone_mask := NULL;
  END IF;
  PERFORM set_config('gridsvc.mask_written_id_number_mask', '', true);
  PERFORM set_config('gridsvc.mask_written_phone_mask', '', true);
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS resident_mask_a_id_number ON {TABLE};
CREATE TRIGGER resident_mask_a_id_number
  BEFORE UPDATE OF id_number_mask ON {TABLE}
  FOR EACH ROW EXECUTE FUNCTION territory_resident_mask_written('id_number_mask');
DROP TRIGGER IF EXISTS resident_mask_a_phone ON {TABLE};
CREATE TRIGGER resident_mask_a_phone
  BEFORE UPDATE OF phone_mask ON {TABLE}
  FOR EACH ROW EXECUTE FUNCTION territory_resident_mask_written('phone_mask');
-- fires whenever one of the notes may have been written, so a note never outlives its row
DROP TRIGGER IF EXISTS resident_mask_z_guard ON {TABLE};
CREATE TRIGGER resident_mask_z_guard
  BEFORE UPDATE OF id_number, phone, id_number_mask, phone_mask ON {TABLE}
  FOR EACH ROW EXECUTE FUNCTION territory_resident_mask_guard();
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS resident_mask_z_guard ON {TABLE};
DROP TRIGGER IF EXISTS resident_mask_a_phone ON {TABLE};
DROP TRIGGER IF EXISTS resident_mask_a_id_number ON {TABLE};
DROP FUNCTION IF EXISTS territory_resident_mask_guard();
DROP FUNCTION IF EXISTS territory_resident_mask_written();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("territory", "0004_resident_masks"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
