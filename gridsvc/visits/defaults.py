"""The visit rules a street starts with (seeded by a data migration; editable in the admin).

社区矫正 and 两劳帮教: monthly; 困难家庭: monthly; 独居老人: monthly by the building head
(change the frequency to weekly in the admin where the street wants it); every household once
a year (入户走访全覆盖) by the grid member.
"""

from __future__ import annotations

DEFAULT_RULES: list[dict] = [
    {
        "code": "community-correction-monthly",
        "name": "社区矫正对象每月走访",
        "target_group": "community_correction",
        "frequency": "monthly",
        "window_days": 20,
        "grace_days": 5,
        "visitor_level": "grid_member",
        "description": "Community correction: the grid member visits monthly.",
    },
    {
        "code": "help-education-monthly",
        "name": "两劳帮教对象每月走访",
        "target_group": "help_education",
        "frequency": "monthly",
        "window_days": 20,
        "grace_days": 5,
        "visitor_level": "grid_member",
        "description": "Released persons under help-education: the grid member visits monthly.",
    },
    {
        "code": "hardship-monthly",
        "name": "困难家庭每月走访",
        "target_group": "hardship",
        "frequency": "monthly",
        "window_days": 25,
        "grace_days": 5,
        "visitor_level": "grid_member",
        "joint_visit": True,
        "joint_with": "社区干部或宗教场所代表(少数民族困难家庭)",
        "description": "Hardship families: monthly; jointly where the family wishes.",
    },
    {
        "code": "elderly-alone-monthly",
        "name": "独居老人每月探访",
        "target_group": "elderly_alone",
        "frequency": "monthly",
        "window_days": 25,
        "grace_days": 3,
        "visitor_level": "building_head",
        "description": "Elderly living alone: the building head looks in (configurable: weekly).",
    },
    {
        "code": "all-households-yearly",
        "name": "全部住户每年入户走访",
        "target_group": "all_households",
        "frequency": "yearly",
        "window_days": None,
        "grace_days": 15,
        "visitor_level": "grid_member",
        "description": "Every household once a year (入户走访全覆盖).",
    },
]
