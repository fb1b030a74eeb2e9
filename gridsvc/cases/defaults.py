"""Seeded category rules, time limits, flag rules and outside departments (editable in
``/admin/cases/…`` and through ``/api/v1/rules/``, with history; see docs/cases.md).

Time limits follow the common practice of street grid platforms: accept 受理 within working
hours, handle 处置 within working days that grow as a case climbs the chain, verify 核查 within
working days. Values are (amount, unit); a limit with level "" applies at every level.
"""

from __future__ import annotations

from typing import Any

# code, name, kind, start level, notify at once, 立案条件, 结案条件
CATEGORIES: list[tuple[str, str, str, str, list[str], str, str]] = [
    (
        "neighbour",
        "邻里纠纷",
        "dispute",
        "unit_head",
        [],
        "当事人明确、事实清楚、属于邻里间民事纠纷",
        "双方达成一致或调解协议履行完毕,回访满意",
    ),
    ("neighbour.noise", "噪音扰民", "dispute", "", [], "", ""),
    ("neighbour.leak", "漏水纠纷", "dispute", "", [], "", ""),
    ("neighbour.parking", "停车纠纷", "dispute", "building_head", [], "", ""),
    (
        "property",
        "物业服务纠纷",
        "dispute",
        "property_manager",
        [],
        "涉及物业服务合同或物业费、公共设施维修",
        "物业整改到位或达成协议,业主回访满意",
    ),
    (
        "family",
        "婚姻家庭纠纷",
        "dispute",
        "building_head",
        [],
        "家庭成员间纠纷,无人身伤害",
        "调解成功或引导诉讼,回访无激化",
    ),
    (
        "rent",
        "房屋租赁纠纷",
        "dispute",
        "building_head",
        [],
        "有租赁关系,争议明确",
        "达成协议或转交主管部门并有回复",
    ),
    (
        "wages",
        "劳资纠纷(拖欠工资)",
        "dispute",
        "community_cadre",
        [],
        "用工关系明确,涉及工资报酬",
        "工资支付到位或转劳动监察立案",
    ),
    (
        "land",
        "土地权属/边界纠纷",
        "dispute",
        "community_cadre",
        [],
        "权属或边界争议明确",
        "调解协议签订或移交自然资源部门处理",
    ),
    (
        "water",
        "水源纠纷",
        "dispute",
        "community_cadre",
        [],
        "涉及用水、水源或管网",
        "供水恢复或达成协议,回访满意",
    ),
    (
        "ethnic",
        "涉及民族宗教因素纠纷",
        "dispute",
        "community_cadre",
        ["community_cadre", "ethnic_affairs_desk"],
        "涉及民族、宗教因素,一律立案",
        "矛盾化解,民族宗教工作站确认,回访稳定",
    ),
    (
        "hazard",
        "安全隐患",
        "hazard",
        "building_head",
        [],
        "存在危及人身财产安全的隐患",
        "隐患消除并有整改后照片",
    ),
    ("hazard.fire", "消防隐患(楼道堆物、电动车充电)", "hazard", "", [], "", ""),
    ("hazard.gas", "燃气隐患", "hazard", "property_manager", ["community_cadre"], "", ""),
    ("hazard.structure", "房屋结构/高空坠物隐患", "hazard", "property_manager", [], "", ""),
]

# category, stage, level, amount, unit
TIME_LIMITS: list[tuple[str, str, str, float, str]] = []
for _code in ("neighbour", "property", "family", "rent", "wages", "land", "water", "hazard"):
    TIME_LIMITS += [
        (_code, "accept", "", 4, "working_hours"),
        (_code, "dispatch", "", 4, "working_hours"),
        (_code, "handle", "unit_head", 3, "working_days"),
        (_code, "handle", "building_head", 3, "working_days"),
        (_code, "handle", "owners_committee", 5, "working_days"),
        (_code, "handle", "property_manager", 5, "working_days"),
        (_code, "handle", "community_cadre", 7, "working_days"),
        (_code, "handle", "mediation_committee", 15, "working_days"),
        (_code, "handle", "street_dispatcher", 15, "working_days"),
        (_code, "verify", "", 3, "working_days"),
    ]
TIME_LIMITS += [
    ("ethnic", "accept", "", 1, "working_hours"),
    ("ethnic", "dispatch", "", 1, "working_hours"),
    ("ethnic", "handle", "", 2, "working_days"),
    ("ethnic", "verify", "", 2, "working_days"),
    ("hazard.gas", "handle", "", 24, "natural_hours"),
    ("hazard.fire", "handle", "", 2, "working_days"),
]

# flag, lowest starting level, notify at once
FLAG_RULES: list[tuple[str, str, list[str]]] = [
    ("ethnic_religious", "community_cadre", ["community_cadre", "ethnic_affairs_desk"]),
    ("group_incident", "community_cadre", ["community_cadre", "street_dispatcher"]),
    ("petition_risk", "community_cadre", ["community_cadre", "mediation_committee"]),
]

DEPARTMENTS: list[tuple[str, str]] = [
    ("police", "派出所"),
    ("market", "市场监管所"),
    ("labour", "劳动保障监察大队"),
    ("housing", "住建局房屋安全科"),
    ("water", "供水公司"),
    ("fire", "消防救援站"),
    ("natural-resources", "自然资源所"),
]


def seed(Category: Any, TimeLimit: Any, FlagRule: Any, Department: Any) -> None:
    """Create the seeded rows that do not exist yet (safe to run twice)."""
    by_code: dict[str, Any] = {}
    for code, name, kind, level, notify, open_c, close_c in CATEGORIES:
        parent = by_code.get(code.split(".")[0]) if "." in code else None
        obj, _ = Category.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": kind,
                "parent": parent,
                "start_level": level,
                "notify": notify,
                "open_conditions": open_c,
                "close_conditions": close_c,
            },
        )
        by_code[code] = obj
    for code, stage, level, amount, unit in TIME_LIMITS:
        TimeLimit.objects.get_or_create(
            category=by_code[code],
            stage=stage,
            level=level,
            defaults={"amount": amount, "unit": unit},
        )
    for flag, level, notify in FLAG_RULES:
        FlagRule.objects.get_or_create(flag=flag, defaults={"min_level": level, "notify": notify})
    for code, name in DEPARTMENTS:
        Department.objects.get_or_create(code=code, defaults={"name": name})
