"""Rendering of the work report: xlsx (openpyxl, with charts) and PDF (matplotlib PdfPages:
figure tables, charts and a map of case density over the grids).

Chinese text uses "Noto Sans CJK SC" (Debian's fonts-noto-cjk, installed by setup.sh).

The community work (民族团结进步创建, the report's ``unity`` dict) has a sheet of its own in the
xlsx and a section of its own in the PDF, both written from :func:`unity_rows`.

The report arrives already cut to the reader's need-to-know (``gridsvc.reports.services``):
figures absent from it (sensitive ones, for the neighbour tier) are left out of every table,
chart and page, and a suppressed small count (None) is written as "<5". Every string cell
of the workbook is text, never a formula (:mod:`gridsvc.dataio.cells`).
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import shapely  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.collections import PatchCollection  # noqa: E402
from matplotlib.patches import Polygon as MplPolygon  # noqa: E402
from openpyxl import Workbook  # noqa: E402
from openpyxl.chart import BarChart, PieChart, Reference  # noqa: E402
from openpyxl.styles import Font, PatternFill  # noqa: E402

from gridsvc.chain.visibility import SMALL_CELL_K  # noqa: E402
from gridsvc.dataio.cells import append_row  # noqa: E402

CJK_FONT = "Noto Sans CJK SC"
plt.rcParams["font.family"] = [CJK_FONT, "DejaVu Sans"]
plt.rcParams["axes.unicode_minus"] = False
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")


SUPPRESSED = f"<{SMALL_CELL_K}"  # a small count hidden by small-cell suppression


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def _n(v: int | None) -> int | str:
    """A count as written in a file: a suppressed one (None) is "<5"."""
    return SUPPRESSED if v is None else v


def _num(v: int | None) -> int:
    """A count for a chart: a suppressed one is drawn as 0."""
    return v or 0


#: the community section's figures (gridsvc.community.services.figures) as report rows, in
#: the order printed; every count there has a row (the 五员 sentence, screening_summary, is
#: the note under the title instead: tests/test_community_report_rows.py)
UNITY_ROWS: list[tuple[str, str]] = [
    ("activities", "民族团结活动"),
    ("activity_participants", "活动参与人次"),
    ("materials", "发放宣传资料(份)"),
    ("screening_reports", "五员一日一报(份)"),
    ("zero_reports", "其中零报告"),
    ("screening_persons", "五员排查投入人次(本期)"),
    ("screening_persons_year", "五员排查投入人次(年内累计)"),
    ("screening_findings", "排查不稳定因素"),
    ("campaign_returns", "专项排查应报(网格·次)"),
    ("campaign_returns_filed", "专项排查已报(网格·次)"),
    ("petitions", "信访(件)"),
    ("petitions_ethnic_religious", "涉及民族宗教信访"),
    ("group_petitions", "群体性信访(件)"),
    ("venue_visits", "宗教场所走访"),
    ("venue_hazards", "宗教场所走访发现隐患"),
    ("venue_tasks_due", "宗教场所联合走访应走访(次)"),
    ("venue_tasks_done", "宗教场所联合走访已走访(次)"),
    ("venue_tasks_late", "宗教场所联合走访逾期或漏访(次)"),
    ("pairings_active", "结对帮扶"),
    ("pairing_help", "结对帮扶帮扶(次)"),
    ("pairing_help_amount", "结对帮扶帮扶金额(元)"),
    ("volunteer_hours", "志愿服务时长(小时)"),
    ("five_star_households", "五星级文明户"),
    ("disputes_to_mediator", "分派调处员的矛盾纠纷(件)"),
    ("mediations", "调处员调处(次)"),
    ("mediations_agreed", "其中达成协议"),
    ("ethnic_sign_offs", "民族宗教事务会签(件)"),
    ("interpreter_calls", "翻译随行(次)"),
    ("interpreter_needed", "需翻译居民(人)"),
    ("group_members", "群体台账人员(人)"),
    ("group_members_retired_leader", "其中离退休老领导"),
    ("group_members_self_employed", "其中个体户/企业家"),
    ("group_members_returned_overseas", "其中归国华侨/留学生"),
    ("group_members_new_stratum", "其中新的社会阶层"),
    ("members_interpreting", "通少数民族语言的五员/一格十员(人)"),
]
#: the members' languages (``member_languages``: language name → members) as one row each
MEMBER_LANGUAGE_ROW = "五员/一格十员成员语言:{}(人)"
#: the sheet (xlsx) and the section (PDF) of the community work
UNITY_TITLE = "民族团结进步创建"


def unity_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    """The community section (民族团结进步创建, ``r["unity"]``: the dict the report built, read
    as it is — no figure counted again) as (label, value) rows, shared by the xlsx sheet and
    the PDF section; empty when the report has no such section (not for this reader). A
    figure an older (issued, frozen) report does not carry is left out, not shown as 0."""
    u = r.get("unity")
    if not u:
        return []
    rows = [(label, _n(u[key])) for key, label in UNITY_ROWS if key in u]  # None: "<5"
    rows += [
        (MEMBER_LANGUAGE_ROW.format(name), n) for name, n in u.get("member_languages", {}).items()
    ]
    return rows


def _unity_heading(r: dict[str, Any]) -> str:
    """The period and territory of the community section."""
    p, a = r["period"], r["area"]
    level = "社区" if a["level"] == "community" else "街道"
    return f"统计期间 {p['start']} 至 {p['end']} · {level} {a['name']}({a['code']})"


def headline_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    """The headline figures as (label, value) rows, shared by xlsx and PDF; figures absent
    from the report (not for this reader) are left out."""
    p = r["population"]
    rows: list[tuple[str, Any]] = [("户数", p["households"]), ("人口数", p["residents"])]
    if "minority_residents" in p:
        rows += [
            ("少数民族户数", _n(p["minority_households"])),
            ("少数民族户占比", _pct(p["minority_households_share"])),
            ("少数民族人口", _n(p["minority_residents"])),
            ("少数民族人口占比", _pct(p["minority_residents_share"])),
        ]
    rows.append(("流动人口", p["floating_residents"]))
    if "low_income" in p:
        # 低保: the approved applications in force on the period's last day — the one figure
        # (gridsvc.assistance.figures); the 民生服务 rows below do not repeat it
        li = p["low_income"]
        rows += [
            ("低保人数", _n(li["people"])),
            ("低保户数", _n(li["households"])),
            ("少数民族低保人数", _n(li["minority_people"])),
            ("少数民族低保户数", _n(li["minority_households"])),
            ("少数民族占低保人数比例", _pct(li["minority_share"])),
            # the housing type (实物配租), not the rent subsidy paid (民生服务—廉租房租赁补贴)
            ("廉租房住户数(实物配租,按住房登记)", _n(p["low_rent_households"])),
        ]
    v = r["visits"]
    if v.get("available"):
        rows += [
            ("应走访任务", v["tasks_due"]),
            ("已走访", v["tasks_done"]),
            ("走访覆盖率", _pct(v["coverage"])),
            ("走访记录数", v["visits_logged"]),
        ]
    else:
        rows.append(("走访", "暂无数据"))
    c = r["cases"]
    if c.get("available"):
        rows += [
            ("受理矛盾纠纷", c["disputes_received"]),
            ("化解矛盾纠纷", c["disputes_resolved"]),
            ("化解率", _pct(c["resolution_rate"])),
            ("排查安全隐患", c["hazards_found"]),
            ("整改安全隐患", c["hazards_rectified"]),
            ("信访风险案件", c.get("petition_risk", "—")),
        ]
    else:
        rows.append(("矛盾纠纷/安全隐患", "暂无数据"))
    # 民族团结进步创建 (docs/unity.md) has its own sheet and PDF section: unity_rows
    if "assistance" in r:  # 民生服务 from the records (docs/assistance.md)
        from gridsvc.assistance.figures import report_rows

        rows += report_rows(r["assistance"])
    return rows


def _screening_summary(r: dict[str, Any]) -> str:
    """The street's 五员 sentence (截至…共投入X余人次…) of the community section, if any."""
    return str(r.get("unity", {}).get("screening_summary") or "")


def _title(r: dict[str, Any]) -> str:
    kind = "工作月报" if r["period"]["kind"] == "month" else "工作年报"
    return f"{r['area']['name']} {r['period']['title']}{kind}"


# ---------------------------------------------------------------- xlsx
def _table(ws, headers: list[str], rows: list[list[Any]]) -> None:  # type: ignore[no-untyped-def]
    append_row(ws, headers)
    for c in ws[ws.max_row]:
        c.font = Font(bold=True)
        c.fill = HEADER_FILL
    for row in rows:
        append_row(ws, row)
    for i in range(1, len(headers) + 1):
        ws.column_dimensions[ws.cell(1, i).column_letter].width = 16


ASSESSMENT_HEADERS = [
    "网格", "应处置", "按期处置率", "结案率", "按期结案率", "返工率", "超期未处置率", "延期率",
    "自处理", "得分", "等级",
]  # fmt: skip


def assessment_rows(a: dict[str, Any]) -> list[list[Any]]:
    """考核 rows for the xlsx and the PDF: one per grid."""
    out = []
    for row in a.get("by_grid", []):
        f = row["figures"]
        out.append(
            [row["name"], row["counts"]["due"], _pct(f["on_time_handling_rate"]),
             _pct(f["closure_rate"]), _pct(f["on_time_closure_rate"]), _pct(f["rework_rate"]),
             _pct(f["overdue_unhandled_rate"]), _pct(f["extension_rate"]),
             row["counts"]["on_the_spot"],
             "–" if row["score"] is None else round(row["score"], 1), row["grade"] or "–"]
        )  # fmt: skip
    return out


def report_xlsx(r: dict[str, Any]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "概况"
    append_row(ws, [_title(r)])
    ws["A1"].font = Font(bold=True, size=14)
    note = f"统计口径:人口为截至 {r['generated_at'][:10]} 的台账;走访与案件为本期"
    if r.get("privacy", {}).get("sensitive_figures") == "suppressed_below_k":
        note += f";不足{SMALL_CELL_K}的敏感人数以“{SUPPRESSED}”表示"
    append_row(ws, [note])
    ws.append([])
    _table(ws, ["指标", "数值"], [list(x) for x in headline_rows(r)])
    ws.column_dimensions["A"].width = 28
    if unity_rows(r):
        un = wb.create_sheet(UNITY_TITLE)
        append_row(un, [f"{_title(r)} · {UNITY_TITLE}"])
        un["A1"].font = Font(bold=True, size=14)
        append_row(un, [_unity_heading(r)])
        un.append([])
        _table(un, ["指标", "数值"], [list(x) for x in unity_rows(r)])
        un.column_dimensions["A"].width = 36
        if _screening_summary(r):
            un.append([])
            append_row(un, ["五员排查", _screening_summary(r)])

    if "by_ethnicity" in r:
        eth = wb.create_sheet("民族构成")
        _table(
            eth,
            ["民族", "人口", "户数", "占比"],
            [[e["name"], _n(e["residents"]), _n(e["households"]), e["share"]]
             for e in r["by_ethnicity"]],
        )  # fmt: skip
        if r["by_ethnicity"]:
            pie = PieChart()
            pie.title = "人口民族构成"
            n = len(r["by_ethnicity"]) + 1
            pie.add_data(Reference(eth, min_col=2, min_row=1, max_row=n), titles_from_data=True)
            pie.set_categories(Reference(eth, min_col=1, min_row=2, max_row=n))
            eth.add_chart(pie, "F2")

    g = wb.create_sheet("各网格")
    sensitive = bool(r["grids"]) and "minority_residents" in r["grids"][0]
    if sensitive:
        _table(
            g,
            ["网格编码", "网格", "户数", "少数民族户", "人口", "少数民族人口", "少数民族占比", "低保人数",
             "流动人口"],
            [
                [x["code"], x["name"], x["households"], _n(x["minority_households"]),
                 x["residents"], _n(x["minority_residents"]), x["minority_share"],
                 _n(x["low_income"]), x["floating"]]
                for x in r["grids"]
            ],
        )  # fmt: skip
    else:
        _table(
            g,
            ["网格编码", "网格", "户数", "人口", "流动人口"],
            [[x["code"], x["name"], x["households"], x["residents"], x["floating"]]
             for x in r["grids"]],
        )  # fmt: skip
    if r["grids"]:
        chart = BarChart()
        chart.title = "各网格人口"
        chart.y_axis.title = "人"
        n = len(r["grids"]) + 1
        cols = (5, 6) if sensitive else (4, 4)
        chart.add_data(
            Reference(g, min_col=cols[0], max_col=cols[1], min_row=1, max_row=n),
            titles_from_data=True,
        )
        chart.set_categories(Reference(g, min_col=2, min_row=2, max_row=n))
        chart.width, chart.height = 20, 9
        g.add_chart(chart, "K2")

    kg = wb.create_sheet("重点人群")
    _table(kg, ["类别", "人数"], [[x["name"], _n(x["residents"])] for x in r["key_groups"]])
    fl = wb.create_sheet("流动人口")
    _table(
        fl,
        ["户籍地", "人数", "户数"],
        [[x["origin"], x["residents"], x["households"]] for x in r["floating_by_origin"]],
    )
    v = r["visits"]
    vs = wb.create_sheet("走访")
    if v.get("available"):
        _table(
            vs,
            ["走访规则", "应走访", "已走访", "覆盖率"],
            [[x["name"], _n(x["due"]), _n(x["done"]), x["coverage"]] for x in v["by_rule"]],
        )
    else:
        append_row(vs, [v.get("reason", "暂无数据")])
    c = r["cases"]
    cs = wb.create_sheet("矛盾纠纷")
    if c.get("available"):
        _table(
            cs,
            ["类别", "受理", "化解", "化解率"],
            [
                [x["category"], x["received"], x["resolved"], x["rate"]]
                for x in c.get("disputes_by_category", [])
            ],
        )
        cs.append([])
        _table(
            cs,
            ["终结层级", "化解数"],
            [[x["level"], x["resolved"]] for x in c.get("disputes_by_level_ended", [])],
        )
    else:
        append_row(cs, [c.get("reason", "暂无数据")])
    a = r.get("assessment", {})
    ks = wb.create_sheet("考核")
    if a.get("available"):
        _table(ks, ASSESSMENT_HEADERS, assessment_rows(a))
    else:
        append_row(ks, [a.get("reason", "暂无数据")])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- PDF
#: headline rows that fit on one A4 page at the table's font size and row height
TABLE_ROWS_PER_PAGE = 32


def _table_page(
    pdf: PdfPages,
    r: dict[str, Any],
    table_rows: list[tuple[str, Any]] | None = None,
    heading: str = "",
    subtitle: str = "",
    note: str = "",
) -> None:
    """Figures as a table (the headline figures, or ``table_rows`` under ``heading``),
    continued over as many A4 pages as it needs (a long table used to run off the bottom of
    one page, losing its last rows); ``note`` under the subtitle on the first page."""
    rows = [[k, str(v)] for k, v in (headline_rows(r) if table_rows is None else table_rows)]
    chunks = [
        rows[i : i + TABLE_ROWS_PER_PAGE] for i in range(0, len(rows), TABLE_ROWS_PER_PAGE)
    ] or [[]]
    heading = heading or _title(r)
    subtitle = subtitle or f"生成时间 {r['generated_at'][:16].replace('T', ' ')}"
    for number, chunk in enumerate(chunks, start=1):
        fig = plt.figure(figsize=(8.27, 11.69))  # A4
        title = heading if number == 1 else f"{heading}(续 {number}/{len(chunks)})"
        fig.text(0.5, 0.95, title, ha="center", fontsize=18, weight="bold")
        fig.text(0.5, 0.92, subtitle, ha="center", fontsize=9)
        if number == 1 and note:
            fig.text(0.5, 0.895, note, ha="center", fontsize=9)
        ax = fig.add_axes((0.12, 0.08, 0.76, 0.8))
        ax.axis("off")
        if chunk:
            table = ax.table(
                cellText=chunk,
                colLabels=["指标", "数值"],
                colWidths=[0.74, 0.26],
                loc="upper center",
                cellLoc="left",
            )
            table.auto_set_font_size(False)
            table.set_fontsize(11)
            table.scale(1, 1.6)
        pdf.savefig(fig)
        plt.close(fig)


def _unity_page(pdf: PdfPages, r: dict[str, Any]) -> None:
    """The community section (民族团结进步创建): the same rows as the xlsx sheet, under the
    period and territory, with the 五员 sentence."""
    rows = unity_rows(r)
    if rows:
        _table_page(
            pdf,
            r,
            rows,
            heading=f"{_title(r)} · {UNITY_TITLE}",
            subtitle=_unity_heading(r),
            note=_screening_summary(r),
        )


def _chart_page(pdf: PdfPages, r: dict[str, Any]) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11.69, 8.27))
    fig.suptitle(f"{_title(r)} · 图表", fontsize=15)
    eth = [e for e in r.get("by_ethnicity", []) if e["residents"] is not None]
    ax = axes[0][0]
    if eth:
        ax.pie([e["residents"] for e in eth], labels=[e["name"] for e in eth], autopct="%1.0f%%")
        ax.set_title("人口民族构成")
    else:
        ax.axis("off")
    ax = axes[0][1]
    grids = r["grids"]
    names = [(g["name"] or g["code"] or "—").replace("华林山", "") for g in grids]
    x = range(len(grids))
    if grids and "minority_residents" in grids[0]:
        ax.bar([i - 0.2 for i in x], [g["residents"] for g in grids], width=0.4, label="人口")
        ax.bar(
            [i + 0.2 for i in x],
            [_num(g["minority_residents"]) for g in grids],
            width=0.4,
            label="少数民族",
        )
        ax.legend()
    else:
        ax.bar(list(x), [g["residents"] for g in grids], width=0.5, label="人口")
    ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    ax.set_title("各网格人口")
    ax = axes[1][0]
    kg = [k for k in r["key_groups"] if k["residents"]]
    ax.barh([k["name"] for k in kg], [k["residents"] for k in kg], color="#c0504d")
    ax.set_title("重点人群")
    ax = axes[1][1]
    c = r["cases"]
    if c.get("available") and c.get("disputes_by_category"):
        cats = c["disputes_by_category"]
        ax.bar([k["category"] for k in cats], [k["received"] for k in cats], label="受理")
        ax.bar([k["category"] for k in cats], [k["resolved"] for k in cats], label="化解")
        ax.legend()
        ax.tick_params(axis="x", rotation=30)
        ax.set_title("矛盾纠纷(按类别)")
    elif "low_income" in r["population"]:
        li = r["population"]["low_income"]
        ax.bar(
            ["低保人数", "其中少数民族"],
            [_num(li["people"]), _num(li["minority_people"])],
            color="#4f81bd",
        )
        ax.set_title(f"低保(少数民族占 {_pct(li['minority_share'])})")
    else:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    pdf.savefig(fig)
    plt.close(fig)


def _map_page(
    pdf: PdfPages,
    r: dict[str, Any],
    grid_shapes: list[tuple[str, str, Any]],
    density: dict[str, int],
) -> None:
    fig, ax = plt.subplots(figsize=(11.69, 8.27))
    have_cases = r["cases"].get("available")
    if have_cases:
        values = {code: density.get(code, 0) for code, _n, _g in grid_shapes}
        title, unit = "案件密度热力图(本期上报案件数)", "件"
    else:
        values = {g["code"]: g["residents"] for g in r["grids"]}
        title, unit = "网格人口分布(案件数据暂缺)", "人"
    patches, vals = [], []
    for code, _name, geom in grid_shapes:
        for poly in getattr(geom, "geoms", [geom]):
            patches.append(MplPolygon(list(poly.exterior.coords), closed=True))
            vals.append(values.get(code, 0))
    if patches:
        coll = PatchCollection(patches, cmap="YlOrRd", edgecolor="#333333", linewidth=0.8)
        coll.set_array(vals)
        ax.add_collection(coll)
        fig.colorbar(coll, ax=ax, label=unit, shrink=0.7)
        for code, name, geom in grid_shapes:
            p = geom.representative_point()
            label = (name or code).replace("华林山", "")
            ax.text(
                p.x, p.y, f"{label}\n{values.get(code, 0)}", ha="center", va="center", fontsize=8
            )
        minx, miny, maxx, maxy = shapely.total_bounds([g for _c, _n, g in grid_shapes])
        ax.set_xlim(minx, maxx)
        ax.set_ylim(miny, maxy)
        ax.ticklabel_format(useOffset=False)
        ax.set_aspect(1 / max(0.1, math.cos(math.radians((miny + maxy) / 2))))
    ax.set_title(f"{_title(r)} · {title}", fontsize=14)
    ax.set_xlabel("经度")
    ax.set_ylabel("纬度")
    pdf.savefig(fig)
    plt.close(fig)


def _assessment_page(pdf: PdfPages, r: dict[str, Any]) -> None:
    rows = assessment_rows(r.get("assessment", {}))
    if not rows:
        return
    fig = plt.figure(figsize=(11.69, 8.27))  # A4 landscape
    fig.text(0.5, 0.94, f"{_title(r)} · 网格考核", ha="center", fontsize=16, weight="bold")
    ax = fig.add_axes((0.03, 0.08, 0.94, 0.8))
    ax.axis("off")
    table = ax.table(
        cellText=[[str(v) for v in row] for row in rows],
        colLabels=ASSESSMENT_HEADERS,
        loc="upper center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.5)
    pdf.savefig(fig)
    plt.close(fig)


def report_pdf(
    r: dict[str, Any], grid_shapes: list[tuple[str, str, Any]], density: dict[str, int]
) -> bytes:
    """The report as a PDF: figures, charts, map (grid_shapes: (code, name, shapely)) and the
    grids' assessment scores when there are cases."""
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        _table_page(pdf, r)
        _unity_page(pdf, r)
        _chart_page(pdf, r)
        _map_page(pdf, r, grid_shapes, density)
        _assessment_page(pdf, r)
        info = pdf.infodict()
        info["Title"] = _title(r)
        info["Creator"] = "gridsvc"
    return buf.getvalue()
