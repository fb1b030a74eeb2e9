"""Household and resident roster (户籍/居民名册) import from xlsx or csv, in the layout a
community office already keeps, with a per-row error workbook the office can fix and
re-upload.

Columns (Chinese headers; order free, extra columns ignored; see :data:`COLUMNS`):
楼栋 单元 房号 [楼层] 姓名 [性别] 身份证号 民族 [联系电话] [与户主关系] [户籍类型] [户籍地]
[住房性质] [标签/人群类别].

Every row is checked on its own (ID number checksum GB 11643, known ethnicity GB/T 3304,
known building and unit inside the caller's territory, known tags …). Good rows go in, bad
rows are listed — nothing is lost, nothing half-written: all good rows are written in one
transaction. Idempotent: a resident is found again by the keyed hash of the ID number
(``gridsvc.crypto.keyed_hash``) and its household (unit + room), so re-uploading the same or
the fixed rows updates in place rather than duplicating. A person already recorded in another
household of the territory is moved (and the move is reported).

Scope (辖区): an import sees and writes only inside the caller's *staff* territory
(:func:`import_scope`: street, community and grid positions; neighbours' positions — unit
and building heads, property managers, owners' committees — import nothing). Buildings,
units, households and residents are all looked up, and written, through that scope. An ID
number that belongs to a resident outside it is a row error that names nothing (
:data:`ID_REFUSED`): no name, no address, and that resident is neither moved nor changed.

Limits: :func:`read_roster` streams the file (openpyxl read-only mode, the CSV reader) and
stops as soon as ``max_rows`` is passed (:class:`RosterTooLarge`), so a limit is checked
without reading the whole file. An xlsx that declares XML entities is refused (defusedxml).
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from gridsvc.chain.scope import Scope
from gridsvc.chain.visibility import staff_scope
from gridsvc.crypto import fernet, keyed_hash
from gridsvc.territory.codes import ETHNICITIES, ethnicity_code, id_sex, validate_id_number
from gridsvc.territory.models import Building, Household, Resident, Unit

from .access import member_scope
from .cells import append_row
from .progress import ProgressWriter

Progress = Callable[[int, int, str], None]  # (done, total, phase)


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    note: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("building", "楼栋", ("楼栋号", "楼号", "楼栋编码"), True, "楼栋编码、楼名或地址"),
    Column("unit", "单元", ("单元号",), True, "如 1 或 1单元"),
    Column("room", "房号", ("房间号", "门牌号", "室"), True, "如 301"),
    Column("floor", "楼层", ("层",), False, "可空:由房号推出"),
    Column("name", "姓名", ("居民姓名",), True),
    Column("gender", "性别", (), False, "男/女,可空:由身份证号推出"),
    Column("id_number", "身份证号", ("公民身份号码", "身份证号码", "证件号码"), True, "18位"),
    Column("ethnicity", "民族", (), True, "如 汉族、回族、东乡族"),
    Column("phone", "联系电话", ("电话", "手机", "手机号"), False),
    Column("relation", "与户主关系", ("关系",), False, "户主/配偶/子女/父母…"),
    Column(
        "residency",
        "户籍类型",
        ("人口类型", "居住类型"),
        False,
        "户籍人口/人户分离/流动人口/境外人员",
    ),
    Column("origin", "户籍地", ("籍贯", "流出地"), False, "流动人口填写"),
    Column("tenure", "住房性质", ("房屋性质",), False, "自有/租住/廉租房/公租房"),
    Column("tags", "标签/人群类别", ("标签", "人群类别", "人员类别"), False, "多个用、分隔"),
)
ERROR_HEADER = "错误说明"
ROW_HEADER = "原行号"
RESIDENCY = {label: value for value, label in Resident.Residency.choices} | {
    v: v for v in Resident.Residency.values
}
TENURE = {label: value for value, label in Household.Tenure.choices} | {
    v: v for v in Household.Tenure.values
}
TAGS = (
    {label: value for value, label in Resident.Tag.choices}
    | {v: v for v in Resident.Tag.values}
    | {
        "低保户": "low_income",
        "困难户": "hardship",
        "下岗": "unemployed",
        "失业": "unemployed",
        "刑满释放": "help_education",
        "帮教": "help_education",
        "矫正": "community_correction",
        "空巢老人": "elderly_alone",
        "宗教教职人员": "religious_figure",
    }
)
_SPLIT = re.compile(r"[,,、;;/\s]+")
_PHONE = re.compile(r"^(1\d{10}|0\d{2,3}-?\d{7,8})$")
if TYPE_CHECKING:
    from openpyxl import Workbook

# colours of the error workbook (openpyxl is imported where a workbook is made, not with
# the URLconf)
ERROR_FILL = "FFC7CE"
CELL_FILL = "FFEB9C"


class RosterError(ValueError):
    """The file cannot be read as a roster at all (no header row, wrong format)."""


class RosterTooLarge(RosterError):
    """The file has more than ``limit`` data rows (reading stopped there)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows (名册超过 {limit} 行)")
        self.limit = limit


# Texts longer than the database allows are row errors, not a failed transaction.
MAX_LENGTH = {"name": 64, "room": 16, "relation": 16, "origin": 128, "unit": 16}
# The row error for an ID number recorded outside the caller's territory: it names nothing.
ID_REFUSED = "身份证号不能在此使用 (ID number cannot be used here)"


def import_scope(member) -> Scope:  # type: ignore[no-untyped-def]
    """Where ``member`` may import residents (导入范围): their street, community and grid
    positions. Neighbours' positions are left out — they neither write nor learn residents'
    sensitive facts. ``None`` (the operator's command line) is everything."""
    if member is None:
        return member_scope(None)
    return staff_scope(member_scope(member))


@dataclass
class Row:
    number: int  # row number in the file (1-based, header counted)
    raw: list[Any]  # the original cells, in file order
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)
    bad_fields: set[str] = field(default_factory=set)
    clean: dict[str, Any] = field(default_factory=dict)

    def fail(self, key: str, message: str) -> None:
        self.errors.append(message)
        self.bad_fields.add(key)


@dataclass
class Sheet:
    headers: list[str]
    rows: list[Row]
    keys: dict[int, str]  # column index → column key


# ---------------------------------------------------------------- reading
def _norm_header(text: Any) -> str:
    return re.sub(r"\s+", "", str(text or "")).replace("*", "")


def _key_for(header: str) -> str | None:
    h = _norm_header(header)
    for col in COLUMNS:
        if h == col.header or h in col.aliases or h == col.header.split("/")[0]:
            return col.key
    return None


def _iter_matrix(path: Path) -> Iterator[list[Any]]:
    """The file's rows, one at a time (an xlsx in openpyxl's read-only streaming mode)."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        _check_unpacked_size(path)
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # not a zip, bad XML, declared entities (defusedxml) …
            raise RosterError(f"cannot open {path.name} as an xlsx workbook: {exc}") from exc
        try:
            if not wb.worksheets:
                raise RosterError(f"{path.name} has no worksheet")
            for row in wb.worksheets[0].iter_rows(values_only=True):
                yield list(row)
        except RosterError:
            raise
        except Exception as exc:  # a sheet's XML is parsed while iterating
            raise RosterError(f"cannot read {path.name} as an xlsx workbook: {exc}") from exc
        finally:
            wb.close()
        return
    if suffix in (".csv", ".txt"):
        data = path.read_bytes()
        for enc in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise RosterError("CSV is neither UTF-8 nor GB18030 text")
        del data
        try:
            yield from csv.reader(io.StringIO(text))
        except csv.Error as exc:
            raise RosterError(f"cannot read {path.name} as CSV: {exc}") from exc
        return
    raise RosterError(f"{path.name}: a roster is an .xlsx or .csv file")


def _check_unpacked_size(path: Path) -> None:
    """An xlsx is a zip: refuse one that would unpack to more than
    ``settings.ROSTER_MAX_UNPACKED_BYTES`` (default 256 MB) before any XML is parsed (a zip
    bomb; openpyxl reads the shared strings whole even in read-only mode)."""
    limit = int(getattr(settings, "ROSTER_MAX_UNPACKED_BYTES", 256 * 2**20))
    try:
        with zipfile.ZipFile(path) as zf:
            size = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise RosterError(f"cannot open {path.name} as an xlsx workbook: {exc}") from exc
    if size > limit:
        raise RosterError(f"{path.name} unpacks to {size:,} bytes; at most {limit:,} bytes")


def declared_rows(path: str | Path) -> int | None:
    """How many rows the file says it has, without reading them: an xlsx's declared
    ``dimension``, a CSV's line count. ``None`` when the file does not say."""
    path = Path(path)
    if path.suffix.lower() in (".csv", ".txt"):
        with path.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception:
        return None
    try:
        return wb.worksheets[0].max_row if wb.worksheets else None
    except Exception:
        return None
    finally:
        wb.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_roster(path: str | Path, max_rows: int | None = None) -> Sheet:
    """Find the header row (the first with 姓名 and 身份证号 in the first 10 rows) and read the
    rows after it. More than ``max_rows`` data rows → :class:`RosterTooLarge`, raised as soon
    as the next row is seen."""
    matrix = _iter_matrix(Path(path))
    try:
        return _read_sheet(matrix, max_rows)
    finally:
        matrix.close()


def _read_sheet(matrix: Iterator[list[Any]], max_rows: int | None) -> Sheet:
    header: list[Any] | None = None
    header_idx = 0
    keys: dict[int, str] = {}
    for idx, row in enumerate(matrix):
        keys = {i: k for i, cell in enumerate(row) if (k := _key_for(cell))}
        if "name" in keys.values() and "id_number" in keys.values():
            header, header_idx = row, idx
            break
        if idx >= 9:
            break
    if header is None:
        raise RosterError("no header row with 姓名 and 身份证号 in the first 10 rows")
    missing = [c.header for c in COLUMNS if c.required and c.key not in keys.values()]
    if missing:
        raise RosterError(f"missing column(s): {', '.join(missing)}")
    headers = [_cell_text(c) for c in header]
    rows = []
    for n, raw in enumerate(matrix, start=header_idx + 2):
        if not any(_cell_text(c) for c in raw):
            continue
        if max_rows is not None and len(rows) >= max_rows:
            raise RosterTooLarge(max_rows)
        raw = list(raw) + [None] * (len(headers) - len(raw))
        values = {k: _cell_text(raw[i]) for i, k in keys.items() if i < len(raw)}
        rows.append(Row(n, raw[: len(headers)], values))
    return Sheet(headers, rows, keys)


# ---------------------------------------------------------------- checking
@dataclass
class Lookup:
    """Buildings, units and households of the caller's territory, loaded once, each through
    the import scope (a unit head's building is not a licence for its other units)."""

    buildings: dict[str, int]
    outside: set[str]
    units: dict[tuple[int, str], int]
    households: dict[tuple[int, str], int]

    @classmethod
    def load(cls, scope: Scope, refs: Iterable[str]) -> Lookup:
        refs = {r for r in refs if r}
        q = Building.objects.filter(code__in=refs) | Building.objects.filter(name__in=refs)
        q = q | Building.objects.filter(address__in=refs)
        visible = scope.filter(q)
        buildings: dict[str, int] = {}
        for pk, code, name, address in visible.values_list("pk", "code", "name", "address"):
            for key in (code, name, address):
                if key:
                    buildings.setdefault(key, pk)
        outside = set()
        for code, name, address in q.exclude(pk__in=visible.values("pk")).values_list(
            "code", "name", "address"
        ):
            outside |= {code, name, address}
        ids = set(buildings.values())
        units = {
            (b, n): pk
            for pk, b, n in scope.filter(Unit.objects.filter(building__in=ids)).values_list(
                "pk", "building_id", "number"
            )
        }
        households = {
            (u, room): pk
            for pk, u, room in scope.filter(
                Household.objects.filter(unit__building__in=ids)
            ).values_list("pk", "unit_id", "room")
        }
        return cls(buildings, outside, units, households)


def _unit_number(text: str) -> str:
    return re.sub(r"\s*单元$", "", text).strip()


def _room(text: str) -> str:
    return re.sub(r"\s*(室|号)$", "", text).strip()


def check_row(row: Row, lookup: Lookup, seen_ids: dict[str, int]) -> None:
    v = row.values
    headers = {c.key: c.header for c in COLUMNS}
    for key, text in v.items():
        if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
            row.fail(key, f"{headers[key]}含有控制字符 (control character)")
            v[key] = ""
        elif len(text) > MAX_LENGTH.get(key, 256):
            row.fail(key, f"{headers[key]}过长 (longer than {MAX_LENGTH.get(key, 256)})")
            v[key] = ""
    for col in COLUMNS:
        if col.required and not v.get(col.key) and col.key not in row.bad_fields:
            row.fail(col.key, f"{col.header}为空 ({col.header} is empty)")
    ref = v.get("building", "")
    building = lookup.buildings.get(ref)
    if ref and building is None:
        if ref in lookup.outside:
            row.fail("building", f"楼栋 {ref} 不在您的辖区 (building outside your territory)")
        else:
            row.fail("building", f"楼栋 {ref} 不存在 (unknown building)")
    unit_no = _unit_number(v.get("unit", ""))
    unit = lookup.units.get((building, unit_no)) if building else None
    if building and unit_no and unit is None:
        row.fail("unit", f"{ref} 没有 {unit_no} 单元 (unknown unit)")
    room = _room(v.get("room", ""))
    floor = None
    if v.get("floor"):
        if re.fullmatch(r"-?\d+", v["floor"]):
            floor = int(v["floor"])
        else:
            row.fail("floor", f"楼层 {v['floor']!r} 不是数字")
    elif re.fullmatch(r"\d{3,4}", room):
        floor = int(room[:-2])
    id_number = ""
    if v.get("id_number"):
        try:
            id_number = validate_id_number(v["id_number"])
        except ValidationError as exc:
            row.fail("id_number", f"身份证号错误: {exc.messages[0]}")
        else:
            if id_number in seen_ids:
                row.fail("id_number", f"身份证号与第 {seen_ids[id_number]} 行重复 (duplicate)")
            else:
                seen_ids[id_number] = row.number
    ethnicity = ""
    if v.get("ethnicity"):
        try:
            ethnicity = ethnicity_code(v["ethnicity"])
        except ValidationError:
            row.fail("ethnicity", f"民族 {v['ethnicity']!r} 不在 GB/T 3304 民族名称中 (unknown)")
    gender = {"男": "M", "女": "F", "M": "M", "F": "F", "": ""}.get(v.get("gender", ""))
    if gender is None:
        row.fail("gender", f"性别 {v['gender']!r} 应为 男 或 女")
    if not gender and id_number:
        gender = id_sex(id_number)
    elif gender and id_number and gender != id_sex(id_number):
        row.fail(
            "gender", f"性别 {v['gender']!r} 与身份证号不符 (sex does not match the ID number)"
        )
    phone = re.sub(r"[\s()()]", "", v.get("phone", ""))
    if phone and not _PHONE.match(phone):
        row.fail("phone", f"联系电话 {v['phone']!r} 格式不对")
    residency = RESIDENCY.get(v.get("residency") or "户籍人口")
    if residency is None:
        row.fail(
            "residency", f"户籍类型 {v['residency']!r} 应为 户籍人口/人户分离/流动人口/境外人员"
        )
    tenure = TENURE.get(v["tenure"]) if v.get("tenure") else None
    if v.get("tenure") and tenure is None:
        row.fail("tenure", f"住房性质 {v['tenure']!r} 应为 自有/租住/廉租房/公租房")
    tags: list[str] = []
    for label in (t for t in _SPLIT.split(v.get("tags", "")) if t):
        tag = TAGS.get(label)
        if tag is None:
            row.fail("tags", f"标签 {label!r} 未知")
        elif tag not in tags:
            tags.append(tag)
    if row.errors:
        return
    row.clean = {
        "unit": unit,
        "room": room,
        "floor": floor,
        "tenure": tenure,
        "household": lookup.households.get((unit, room)),
        "name": v["name"],
        "gender": gender,
        "birth": f"{id_number[6:10]}-{id_number[10:12]}-{id_number[12:14]}",
        "id_number": id_number,
        "id_hash": keyed_hash(id_number),
        "ethnicity": ethnicity,
        "phone": phone,
        "relation": v.get("relation", ""),
        "residency": residency,
        "origin": v.get("origin", ""),
        "tags": tags,
        "tags_given": "tags" in v,
    }


# ---------------------------------------------------------------- identities
def resolve_identities(rows: list[Row], scope: Scope) -> dict[str, Resident]:
    """The residents the good rows' ID numbers name, found only inside ``scope`` (keyed
    hash). A row whose ID number belongs to a resident outside the scope becomes a row error
    that names nothing (:data:`ID_REFUSED`); that resident is not touched."""
    hashes = {r.clean["id_hash"] for r in rows if r.clean}
    existing: dict[str, Resident] = {}
    if not hashes:
        return existing
    inside = scope.filter(Resident.objects.filter(id_number_hash__in=hashes))
    for res in inside.select_related("household__unit__building").order_by("pk"):
        existing.setdefault(res.id_number_hash, res)
    if scope.everything:
        return existing
    recorded = set(
        Resident.objects.filter(id_number_hash__in=hashes - set(existing))
        .values_list("id_number_hash", flat=True)
        .distinct()
    )
    for row in rows:
        if row.clean and row.clean["id_hash"] in recorded:
            row.fail("id_number", ID_REFUSED)
            row.clean = {}
    return existing


# ---------------------------------------------------------------- writing
def _apply(
    rows: list[Row],
    existing: dict[str, Resident],
    rep: dict[str, Any],
    write: bool,
    scope: Scope,
    progress: Progress | None = None,
) -> None:
    """Write the good rows (in the caller's transaction). ``existing``: the residents found
    by :func:`resolve_identities`; households are written through ``scope``."""
    households = scope.filter(Household.objects.all())
    new_households: dict[tuple[int, str], Household] = {}
    for n, row in enumerate(rows, start=1):
        if progress and (n % 250 == 0 or n == len(rows)):
            progress(n, len(rows), "writing")
        c = row.clean
        hh_id = c["household"]
        key = (c["unit"], c["room"])
        if hh_id is None:
            hh = new_households.get(key)
            if hh is None:
                rep["households_created"] += 1
                hh = Household(unit_id=c["unit"], room=c["room"], floor=c["floor"] or 1)
                if c["tenure"]:
                    hh.tenure = c["tenure"]
                if write:
                    hh.save()
                new_households[key] = hh
            hh_id = hh.pk
        elif write and c["tenure"]:
            households.filter(pk=hh_id).exclude(tenure=c["tenure"]).update(tenure=c["tenure"])
        res = existing.get(c["id_hash"])
        fields = {
            "name": c["name"],
            "gender": c["gender"],
            "birth_date": c["birth"],
            "id_number": c["id_number"],
            "ethnicity": c["ethnicity"],
            "phone": c["phone"],
            "relation_to_head": c["relation"],
            "residency": c["residency"],
            "origin_place": c["origin"],
        }
        if c["tags_given"]:
            fields["tags"] = c["tags"]
        if res is None:
            rep["residents_created"] += 1
            res = Resident(household_id=hh_id, **fields)
            changed = True
        else:
            moved = res.household_id != hh_id and (hh_id is not None or write)
            if moved and res.household_id is not None:
                rep["moved"].append(
                    {"row": row.number, "from": str(res.household), "name": res.name}
                )
            changed = moved or any(
                str(getattr(res, k) or "") != str(val or "") for k, val in fields.items()
            )
            for k, val in fields.items():
                setattr(res, k, val)
            res.household_id = hh_id
            rep["residents_updated" if changed else "residents_unchanged"] += 1
        existing[c["id_hash"]] = res
        if write and changed:
            res.save()
        if write and c["relation"] == "户主":
            households.filter(pk=hh_id).update(head=res)


def new_report(file_name: str, dry_run: bool) -> dict[str, Any]:
    """An empty roster import report."""
    return {
        "file": file_name,
        "dry_run": dry_run,
        "rows": 0,
        "good": 0,
        "bad": 0,
        "households_created": 0,
        "residents_created": 0,
        "residents_updated": 0,
        "residents_unchanged": 0,
        "moved": [],
        "errors": [],
        "fatal": [],
        "applied": False,
    }


def import_roster(
    path: str | Path,
    *,
    dry_run: bool = False,
    actor=None,  # type: ignore[no-untyped-def]
    file_name: str | None = None,
    max_rows: int | None = None,
    progress: Progress | None = None,
    run=None,  # type: ignore[no-untyped-def]
) -> tuple[dict[str, Any], Sheet | None]:
    """Check (and unless ``dry_run``, write) a roster within ``actor``'s :func:`import_scope`.
    Returns (report, sheet); the sheet carries the per-row errors for :func:`error_workbook`.

    More than ``max_rows`` rows → :class:`RosterTooLarge` is raised before anything is
    checked or recorded. ``run``: the queued :class:`~gridsvc.reports.models.ImportRun` this
    is (else a new one is recorded)."""
    from gridsvc.reports.models import ImportRun

    file_name = file_name or Path(path).name
    rep = new_report(file_name, dry_run)
    if progress:
        progress(0, 0, "reading")
    try:
        sheet = read_roster(path, max_rows=max_rows)
    except RosterTooLarge:
        raise
    except RosterError as exc:
        rep["fatal"].append(str(exc))
        sheet = None
    if sheet is not None:
        _check_and_apply(sheet, rep, actor, dry_run, progress)
    rep["ok"] = not rep["fatal"]
    if run is None:
        run = ImportRun(kind=ImportRun.Kind.ROSTER)
    run.file_name = file_name[:255]
    run.actor = actor if getattr(actor, "pk", None) else None
    run.dry_run = dry_run
    run.ok, run.applied, run.report = rep["ok"], rep["applied"], rep
    run.rows_total = run.rows_done = rep["rows"]
    run.save()
    return rep, sheet


def _check_and_apply(
    sheet: Sheet,
    rep: dict[str, Any],
    actor,  # type: ignore[no-untyped-def]
    dry_run: bool,
    progress: Progress | None,
) -> None:
    scope = import_scope(actor)
    total = len(sheet.rows)
    lookup = Lookup.load(scope, (r.values.get("building", "") for r in sheet.rows))
    seen: dict[str, int] = {}
    for n, row in enumerate(sheet.rows, start=1):
        check_row(row, lookup, seen)
        if progress and n % 1000 == 0:
            progress(n, total, "checking")
    existing = resolve_identities(sheet.rows, scope)
    refused = sum(ID_REFUSED in r.errors for r in sheet.rows)
    if refused and actor is not None:
        _audit_refused(actor, rep["file"], refused)
    good = [r for r in sheet.rows if not r.errors]
    rep["rows"], rep["good"] = total, len(good)
    rep["bad"] = total - len(good)
    rep["errors"] = [
        {"row": r.number, "messages": r.errors, "fields": sorted(r.bad_fields)}
        for r in sheet.rows
        if r.errors
    ]
    try:
        from gridsvc.territory.history import status_change

        with transaction.atomic(), status_change(actor, f"名册导入 {rep['file']}"[:200]):
            _apply(good, existing, rep, not dry_run, scope, progress)
            if dry_run:
                transaction.set_rollback(True)
        rep["applied"] = not dry_run and bool(good)
    except Exception as exc:  # nothing written; every row reported as not imported
        rep["fatal"].append(f"import rolled back: {type(exc).__name__}: {exc}")
        rep["applied"] = False
        for key in ("households_created", "residents_created", "residents_updated"):
            rep[key] = 0


def _audit_refused(actor, file_name: str, rows: int) -> None:  # type: ignore[no-untyped-def]
    """ID numbers tried outside the caller's territory are logged (an enumeration shows)."""
    from gridsvc.audit.models import AuditEntry
    from gridsvc.audit.services import record

    record(
        actor,
        AuditEntry.Action.OTHER,
        object_type="roster_import",
        detail={"file": file_name[:255], "id_numbers_refused": rows},
    )


# ---------------------------------------------------------------- limits and queued imports
def sync_row_limit() -> int:
    """Rows imported within the request (``settings.ROSTER_SYNC_MAX_ROWS``, default 1,000:
    about 10 s on a loaded two-core server, well inside gunicorn's 30 s); larger rosters go
    to the background worker."""
    return int(getattr(settings, "ROSTER_SYNC_MAX_ROWS", 1_000))


def max_row_limit() -> int:
    """The most rows one roster may have (``settings.ROSTER_MAX_ROWS``, default 100,000)."""
    return int(getattr(settings, "ROSTER_MAX_ROWS", 100_000))


def run_queued_import(run_id: int) -> dict[str, Any]:
    """The worker's side of :func:`queue_import`: import the run's file within its
    uploader's scope (as the uploader's positions are now), with progress, at most
    :func:`max_row_limit` rows; keep the report and the error workbook, drop the file."""
    from gridsvc.reports.models import ImportRun

    run = ImportRun.objects.select_related("actor").get(pk=run_id)
    if run.status != ImportRun.Status.QUEUED:  # a retry of a finished job
        return {"run": run.pk, "status": run.status}
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING, phase="reading")
    run.status, run.phase = ImportRun.Status.RUNNING, "reading"
    writer = ProgressWriter(run.pk)
    sheet = None
    try:
        # the rows, the report and the run's end commit together: a job killed before the end
        # left nothing, and its retry imports the file again (gridsvc.dataio.tasks)
        with tempfile.TemporaryDirectory() as tmp, transaction.atomic():
            path = Path(tmp) / f"upload{Path(run.file_name).suffix.lower()}"
            path.write_bytes(fernet().decrypt(bytes(run.upload or b"")))
            try:
                rep, sheet = import_roster(
                    path,
                    dry_run=run.dry_run,
                    actor=run.actor,
                    file_name=run.file_name,
                    max_rows=max_row_limit(),
                    progress=writer,
                    run=run,
                )
            except RosterTooLarge as exc:
                rep = new_report(run.file_name, run.dry_run)
                rep["fatal"].append(f"{exc}: split the roster (at most {exc.limit} rows)")
                rep["ok"] = False
                run.report, run.ok, run.applied = rep, False, False
            _end_run(run, rep, sheet)
    except Exception as exc:  # unreadable upload, database gone …: recorded, not lost
        rep = new_report(run.file_name, run.dry_run)
        rep["fatal"].append(f"import failed: {type(exc).__name__}")
        rep["ok"] = False
        run.report, run.ok, run.applied = rep, False, False
        _end_run(run, rep, None)
    finally:
        writer.close()
    return {"run": run.pk, "status": run.status, "rows": rep.get("rows", 0)}


def _end_run(run, rep: dict[str, Any], sheet: Sheet | None) -> None:  # type: ignore[no-untyped-def]
    """A queued run is over: its status, the error workbook; the upload is dropped."""
    from gridsvc.reports.models import ImportRun

    run.status = ImportRun.Status.DONE if rep["ok"] else ImportRun.Status.FAILED
    run.phase = "done"
    run.finished_at = timezone.now()
    run.upload = None
    if sheet is not None and rep.get("bad"):
        run.error_workbook = fernet().encrypt(error_workbook(sheet))
    run.save()


def run_status(run) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What the uploader sees of an import run (poll until ``status`` is done or failed)."""
    finished = run.status in ("done", "failed")
    return {
        "id": run.pk,
        "kind": run.kind,
        "file": run.file_name,
        "dry_run": run.dry_run,
        "status": run.status,
        "phase": run.phase,
        "rows_total": run.rows_total,
        "rows_done": run.rows_done,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "ok": run.ok if finished else None,
        "applied": run.applied,
        "has_error_workbook": run.error_workbook is not None,
        "report": run.report if finished else None,
    }


def stored_error_workbook(run) -> bytes | None:  # type: ignore[no-untyped-def]
    """The error workbook a queued run kept (decrypted), or None."""
    if run.error_workbook is None:
        return None
    return fernet().decrypt(bytes(run.error_workbook))


# ---------------------------------------------------------------- workbooks
def error_workbook(sheet: Sheet) -> bytes:
    """The rows with errors, as the office wrote them, plus 错误说明; offending cells and the
    error column highlighted. Re-uploadable once fixed (the extra columns are ignored)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook()
    ws = wb.active
    ws.title = "错误行"
    append_row(ws, [ROW_HEADER, *sheet.headers, ERROR_HEADER])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    by_key = {k: i for i, k in sheet.keys.items()}
    for row in (r for r in sheet.rows if r.errors):
        # the office's own cells, always as text (a cell "=1+2" comes back as "=1+2")
        append_row(ws, [row.number, *[_cell_text(c) for c in row.raw], ";".join(row.errors)])
        r = ws.max_row
        for key in row.bad_fields:
            if key in by_key:
                ws.cell(r, by_key[key] + 2).fill = PatternFill("solid", fgColor=CELL_FILL)
        err = ws.cell(r, len(sheet.headers) + 2)
        err.fill = PatternFill("solid", fgColor=ERROR_FILL)
        err.alignment = Alignment(wrap_text=True)
    ws.column_dimensions["A"].width = 8
    ws.column_dimensions[ws.cell(1, len(sheet.headers) + 2).column_letter].width = 60
    ws.freeze_panes = "B2"
    return _save(wb)


def template_workbook() -> bytes:
    """An empty roster template (名册模板) with the headers, a notes sheet and dropdowns."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = "居民名册"
    append_row(ws, [c.header + ("*" if c.required else "") for c in COLUMNS])
    for i, col in enumerate(COLUMNS, start=1):
        cell = ws.cell(1, i)
        cell.font = Font(bold=True, color="C00000" if col.required else "000000")
        ws.column_dimensions[cell.column_letter].width = max(10, len(col.header) * 3)
    ws.freeze_panes = "A2"
    lists = {
        "residency": [label for _v, label in Resident.Residency.choices],
        "tenure": [label for _v, label in Household.Tenure.choices],
        "gender": ["男", "女"],
    }
    for i, col in enumerate(COLUMNS, start=1):
        if col.key in lists:
            dv = DataValidation(type="list", formula1='"' + ",".join(lists[col.key]) + '"')
            ws.add_data_validation(dv)
            letter = ws.cell(1, i).column_letter
            dv.add(f"{letter}2:{letter}5000")
    notes = wb.create_sheet("填写说明")
    append_row(notes, ["列", "必填", "说明"])
    for col in COLUMNS:
        append_row(notes, [col.header, "是" if col.required else "", col.note])
    notes.append([])
    append_row(notes, ["民族", "", "、".join(zh for zh, _en in ETHNICITIES.values())])
    append_row(notes, ["标签/人群类别", "", "、".join(label for _v, label in Resident.Tag.choices)])
    return _save(wb)


def _save(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
