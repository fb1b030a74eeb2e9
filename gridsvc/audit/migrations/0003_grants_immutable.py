"""Unmask grants cannot be extended or rewritten, and no role but the owner may change the
audit tables.

- ``audit_unmaskgrant``: a trigger refuses any UPDATE of ``member``, ``reason``,
  ``created_at`` or ``expires_at``; ``revoked_at`` may be set once (from NULL), never cleared
  or moved; DELETE is refused. An UPDATE of ``expires_at`` can no longer stretch a 30-minute
  break-the-glass grant into a permanent one.
- Privileges: every role other than the owner of ``audit_auditentry`` / ``audit_unmaskgrant``
  loses UPDATE, DELETE, TRUNCATE, TRIGGER and REFERENCES there (INSERT and SELECT stay; on
  grants, UPDATE stays for the revocation). Run again by ``scripts/setup.sh`` for the
  application role (``scripts/db_roles.sql``). Only the owner can disable a trigger (ALTER
  TABLE) or truncate; the application connects as a role that is not the owner.
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION audit_grant_refuse_change() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'unmask grants are kept (DELETE refused)'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.id IS DISTINCT FROM OLD.id
     OR NEW.member_id IS DISTINCT FROM OLD.member_id
     OR NEW.reason IS DISTINCT FROM OLD.reason
     OR NEW.created_at IS DISTINCT FROM OLD.created_at
     OR NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
    RAISE EXCEPTION 'an unmask grant cannot be changed, only revoked'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
    RAISE EXCEPTION 'an unmask grant is revoked once'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_grant_only_revoke
  BEFORE UPDATE OR DELETE ON audit_unmaskgrant
  FOR EACH ROW EXECUTE FUNCTION audit_grant_refuse_change();

CREATE OR REPLACE FUNCTION audit_lock_down_privileges() RETURNS void AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT DISTINCT c.relname, g.grantee::regrole::text AS grantee
    FROM pg_class c, aclexplode(c.relacl) g
    WHERE c.relname IN ('audit_auditentry', 'audit_unmaskgrant')
      AND c.relnamespace = 'public'::regnamespace
      AND g.grantee <> 0 AND g.grantee <> c.relowner
  LOOP
    IF r.relname = 'audit_auditentry' THEN
      EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON %I FROM %s',
                     r.relname, r.grantee);
    ELSE
      EXECUTE format('REVOKE DELETE, TRUNCATE, TRIGGER, REFERENCES ON %I FROM %s',
                     r.relname, r.grantee);
    END IF;
  END LOOP;
  REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON audit_auditentry FROM PUBLIC;
  REVOKE DELETE, TRUNCATE, TRIGGER, REFERENCES ON audit_unmaskgrant FROM PUBLIC;
END;
$$ LANGUAGE plpgsql;

SELECT audit_lock_down_privileges();
"""

REVERSE = """
DROP TRIGGER IF EXISTS audit_grant_only_revoke ON audit_unmaskgrant;
DROP FUNCTION IF EXISTS audit_grant_refuse_change();
DROP FUNCTION IF EXISTS audit_lock_down_privileges();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
