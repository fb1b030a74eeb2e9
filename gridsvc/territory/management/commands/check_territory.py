"""``manage.py check_territory [--community CODE]``: report topology problems.

Buildings outside every grid, grids that overlap (with the overlap area), gaps inside a
community (area of the community not covered by its grids), invalid geometries. Exit code 1
when something is found, so it can run in a cron job or CI.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from gridsvc.territory.services import orphan_buildings

_CHECKS = {
    "overlapping grids": """
        SELECT a.code || ' ∩ ' || b.code,
               round(ST_Area(ST_Intersection(a.boundary, b.boundary)::geography)::numeric, 1)
        FROM territory_grid a JOIN territory_grid b
          ON a.id < b.id AND a.parent_id IS NULL AND b.parent_id IS NULL
         AND a.boundary && b.boundary AND ST_Overlaps(a.boundary, b.boundary)
        JOIN territory_community c ON c.id = a.community_id
        WHERE (%(community)s::text IS NULL OR c.code = %(community)s)
        """,
    "gaps inside communities": """
        SELECT c.code, round(ST_Area(ST_Difference(c.boundary,
               ST_Union(g.boundary))::geography)::numeric, 1) AS gap
        FROM territory_community c JOIN territory_grid g
          ON g.community_id = c.id AND g.parent_id IS NULL
        WHERE c.boundary IS NOT NULL AND (%(community)s::text IS NULL OR c.code = %(community)s)
        GROUP BY c.id HAVING ST_Area(ST_Difference(c.boundary,
               ST_Union(g.boundary))::geography) > 1
        """,
    "invalid grid geometries": """
        SELECT code, ST_IsValidReason(boundary) FROM territory_grid
        WHERE NOT ST_IsValid(boundary)
        """,
    "invalid building footprints": """
        SELECT code, ST_IsValidReason(footprint) FROM territory_building
        WHERE NOT ST_IsValid(footprint)
        """,
}


class Command(BaseCommand):
    help = "Report buildings in no grid, overlapping grids, gaps and invalid geometries."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--community", help="12-digit community code")

    def handle(self, *args, community: str | None = None, **options) -> None:  # type: ignore[no-untyped-def]
        problems = 0
        orphans = list(orphan_buildings().values_list("code", "name"))
        self.stdout.write(f"buildings in no grid: {len(orphans)}")
        for code, name in orphans:
            self.stdout.write(f"  {code} {name}")
        problems += len(orphans)
        with connection.cursor() as cur:
            for title, sql in _CHECKS.items():
                cur.execute(sql, {"community": community})
                rows = cur.fetchall()
                self.stdout.write(f"{title}: {len(rows)}")
                for row in rows:
                    self.stdout.write("  " + "  ".join(str(v) for v in row))
                problems += len(rows)
        if problems:
            raise CommandError(f"{problems} topology problem(s) found")
        self.stdout.write(self.style.SUCCESS("territory is clean"))
