"""Triggers that keep the tile cache and the offline packages honest.

After every INSERT/UPDATE/DELETE statement on a source table, a statement-level trigger
(transition tables: one call per statement, also for bulk loads) deletes the cached tiles of
the affected layers whose ``bounds`` touch the changed rows (old and new geometry), and logs
the grids whose data changed in ``layers_gridchange`` (an offline package is stale while its
grid has rows there).
"""

from django.db import migrations

TOUCH = """
CREATE OR REPLACE FUNCTION layers_touch(p_layers text[], p_geoms geometry[], p_grids bigint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE n integer := coalesce(array_length(p_geoms, 1), 0);
BEGIN
  IF n > 0 AND coalesce(array_length(p_layers, 1), 0) > 0 THEN
    IF n > 200 THEN
      -- bulk statements: one box around everything they touched
      DELETE FROM layers_tilecache t
       WHERE t.layer = ANY(p_layers)
         AND t.bounds && (SELECT ST_SetSRID(ST_Extent(g)::geometry, 4326) FROM unnest(p_geoms) g);
    ELSE
      DELETE FROM layers_tilecache t USING unnest(p_geoms) g
       WHERE g IS NOT NULL AND t.bounds && g AND t.layer = ANY(p_layers);
    END IF;
  END IF;
  INSERT INTO layers_gridchange(grid_id, changed_at)
    SELECT DISTINCT g, now() FROM unnest(p_grids) g WHERE g IS NOT NULL;
END $$;
"""

# table → (layers, SELECT of (geom, grid_id) over the transition table {rows} aliased r)
TABLES = {
    "territory_grid": (
        ["grids"],
        "SELECT r.boundary::geometry AS geom, r.id AS grid FROM {rows} r",
    ),
    "territory_compound": (
        ["compounds"],
        "SELECT r.boundary::geometry AS geom, b.grid_id AS grid FROM {rows} r"
        " LEFT JOIN territory_building b ON b.compound_id = r.id",
    ),
    "territory_building": (
        ["buildings", "households", "grids", "compounds", "visits"],
        "SELECT r.footprint::geometry AS geom, r.grid_id AS grid FROM {rows} r",
    ),
    "territory_unit": (
        ["households"],
        "SELECT b.point::geometry AS geom, b.grid_id AS grid FROM {rows} r"
        " JOIN territory_building b ON b.id = r.building_id",
    ),
    "territory_household": (
        ["households", "visits"],
        "SELECT b.point::geometry AS geom, b.grid_id AS grid FROM {rows} r"
        " JOIN territory_unit u ON u.id = r.unit_id JOIN territory_building b ON b.id = u.building_id",
    ),
    "territory_resident": (
        [],
        "SELECT NULL::geometry AS geom, b.grid_id AS grid FROM {rows} r"
        " JOIN territory_household h ON h.id = r.household_id"
        " JOIN territory_unit u ON u.id = h.unit_id JOIN territory_building b ON b.id = u.building_id",
    ),
    "territory_place": (
        ["places"],
        "SELECT r.point::geometry AS geom, r.grid_id AS grid FROM {rows} r",
    ),
    "cases_case": (
        ["cases", "heatmap"],
        "SELECT r.location::geometry AS geom, r.grid_id AS grid FROM {rows} r",
    ),
    "visits_visit": (
        ["visits"],
        "SELECT b.point::geometry AS geom, b.grid_id AS grid FROM {rows} r"
        " JOIN territory_household h ON h.id = r.household_id"
        " JOIN territory_unit u ON u.id = h.unit_id JOIN territory_building b ON b.id = u.building_id",
    ),
}


def _function(table: str, layers: list[str], select: str) -> str:
    arr = "ARRAY[" + ", ".join(f"'{x}'" for x in layers) + "]::text[]"

    def run(rows: str) -> str:
        q = select.format(rows=rows)
        return (
            f"    SELECT array_agg(s.geom) FILTER (WHERE s.geom IS NOT NULL), array_agg(DISTINCT s.grid)"
            f" INTO geoms, grids FROM ({q}) s;\n"
            f"    PERFORM layers_touch({arr}, geoms, grids);\n"
        )

    return f"""
CREATE OR REPLACE FUNCTION layers_on_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE geoms geometry[]; grids bigint[];
BEGIN
  IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
{run("new_rows")}  END IF;
  IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN
{run("old_rows")}  END IF;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS layers_{table}_ins ON {table};
DROP TRIGGER IF EXISTS layers_{table}_upd ON {table};
DROP TRIGGER IF EXISTS layers_{table}_del ON {table};
CREATE TRIGGER layers_{table}_ins AFTER INSERT ON {table}
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION layers_on_{table}();
CREATE TRIGGER layers_{table}_upd AFTER UPDATE ON {table}
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION layers_on_{table}();
CREATE TRIGGER layers_{table}_del AFTER DELETE ON {table}
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION layers_on_{table}();
"""


SQL = TOUCH + "".join(_function(t, layers, sel) for t, (layers, sel) in TABLES.items())
REVERSE = "".join(
    f"DROP TRIGGER IF EXISTS layers_{t}_ins ON {t}; DROP TRIGGER IF EXISTS layers_{t}_upd ON {t};"
    f" DROP TRIGGER IF EXISTS layers_{t}_del ON {t}; DROP FUNCTION IF EXISTS layers_on_{t}();\n"
    for t in TABLES
) + "DROP FUNCTION IF EXISTS layers_touch(text[], geometry[], bigint[]);"


class Migration(migrations.Migration):
    dependencies = [
        ("layers", "0001_initial"),
        ("territory", "0001_initial"),
        ("cases", "0001_initial"),
        ("visits", "0001_initial"),
    ]
    operations = [migrations.RunSQL(SQL, REVERSE)]
