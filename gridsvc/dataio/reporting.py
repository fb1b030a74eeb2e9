"""Plain-text rendering of import reports for the command line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def boundary_report_lines(r: dict[str, Any]) -> Iterator[str]:
    mode = "DRY RUN" if r["dry_run"] else ("IMPORTED" if r["applied"] else "NOT IMPORTED")
    yield f"{mode}: {r['kind']} boundaries from {r['file']} — {r['features']} feature(s)"
    crs = r.get("crs") or {}
    if crs:
        yield (
            f"CRS: {crs.get('source')} {crs.get('source_name', '')}"
            + (" (assumed)" if crs.get("assumed") else "")
            + (f" stated {crs['stated']}" if crs.get("stated") else "")
            + (f" {crs['offset'].upper()} offset undone" if crs.get("offset") else "")
            + f" → {crs.get('target')}"
        )
    yield (
        f"new {len(r['created'])}, updated {len(r['updated'])}, unchanged {len(r['unchanged'])}"
        + (f", buildings re-derived {r['rederived_buildings']}" if r["applied"] else "")
    )
    for g in r["invalid_geometries"]:
        yield (
            f"  invalid {g['code']}: {g['reason']} — repair {g['repair'] or 'impossible'}, "
            f"area {g['area_before_m2']} → {g['area_after_m2']} m²"
        )
    for title, key in (("ERRORS", "errors"), ("warnings", "warnings")):
        if r[key]:
            yield f"{title} ({len(r[key])}):"
            for item in r[key]:
                yield f"  [{item['check']}] {item['message']}"
    if r["ok"] and not r["warnings"]:
        yield "no problems found"


def roster_report_lines(r: dict[str, Any]) -> Iterator[str]:
    mode = "DRY RUN" if r["dry_run"] else ("IMPORTED" if r["applied"] else "NOT IMPORTED")
    yield f"{mode}: roster {r['file']} — {r['rows']} row(s), {r['good']} good, {r['bad']} with errors"
    yield (
        f"households new {r['households_created']}, residents new {r['residents_created']}, "
        f"updated {r['residents_updated']}, unchanged {r['residents_unchanged']}"
    )
    for e in r["errors"][:50]:
        yield f"  row {e['row']}: {'; '.join(e['messages'])}"
    if len(r["errors"]) > 50:
        yield f"  … {len(r['errors']) - 50} more (see the error workbook)"
    for m in r.get("fatal", []):
        yield f"ERROR: {m}"
