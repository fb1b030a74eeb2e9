"""Masks inside free text (自由文本脱敏): a phone or an ID number typed into a note, a
description or a contact line is masked there too, with the mask the record's own field uses
(``mask_phone``: last four digits; ``mask_id_number``: region + last four).

A mask is judged over everything shown together: a masked ``home_contact_phone`` beside a
``home_contact`` of "父亲 13993001234" is no mask, nor is a reporter's phone kept out of an
Open311 answer and typed again in its description. Outputs that mask a field run the record's
free text through :func:`mask_in_text` with the field's clear value (``known``); numbers that
look like a mainland mobile phone or an 18-character ID number are masked anyway, whoever
they belong to.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .codes import mask_id_number, mask_phone

#: an 18-character ID number (GB 11643: 17 digits and a check character), not inside a longer run
ID_NUMBER_RE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
#: a mainland mobile phone (11 digits from 13…–19…), with an optional +86 / 86 before it
MOBILE_RE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")


def _digits(value: str) -> str:
    return re.sub(r"[^\dXx]", "", value)


def mask_in_text(text: str, known: Iterable[tuple[str, str]] = ()) -> str:
    """``text`` with every ID number and mobile phone in it masked, and every value of
    ``known`` (pairs ``(clear, masked)``: a record's phone and the mask its field shows)
    replaced by its mask wherever it appears (also written with spaces or dashes)."""
    if not text:
        return text
    for clear, masked in known:
        digits = _digits(clear or "")
        if len(digits) < 5:  # too short to tell apart from other numbers
            continue
        pattern = r"(?<![0-9])" + r"[- ]?".join(re.escape(d) for d in digits) + r"(?![0-9])"
        text = re.sub(pattern, masked, text)
    text = ID_NUMBER_RE.sub(lambda m: mask_id_number(m.group(0).upper()) or "", text)
    return MOBILE_RE.sub(lambda m: mask_phone(_digits(m.group(0))[-11:]) or "", text)


def phone_in_text(text: str, phone: str) -> str:
    """:func:`mask_in_text` for a record whose ``phone`` is shown masked."""
    return mask_in_text(text, [(phone, mask_phone(phone) or "")] if phone else [])


def amounts_in_text(text: str, amounts: Iterable[object], mask: str) -> str:
    """``text`` with each of ``amounts`` (yuan: ``Decimal("620.00")``; None skipped) written
    as ``mask`` wherever it stands as a number of its own ("620", "620.0", "620.00元"), for a
    note beside an amount shown masked. Amounts below 10 are left alone: a single digit is
    every other number in a note."""
    from decimal import Decimal, InvalidOperation

    if not text:
        return text
    for value in amounts:
        if value is None:
            continue
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            continue
        if amount < 10:
            continue
        whole, _, frac = f"{amount:.2f}".partition(".")
        frac = frac.rstrip("0")
        tail = r"(?:\.0{1,2})?" if not frac else r"\." + re.escape(frac) + "0?"
        head = re.escape(whole)
        if len(whole) > 3:  # 1,200 as well as 1200
            head = f"(?:{head}|{re.escape(f'{int(whole):,}')})"
        text = re.sub(rf"(?<![\d.,]){head}{tail}(?![\d]|[.,]\d)", mask, text)
    return text
