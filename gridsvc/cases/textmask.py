"""A case's free text as a reader sees it (自由文本脱敏, cases): the parties 当事人 are shown
masked (张*, no phone, no ID number) to everyone but the case's handler and reporter, so a
phone, an ID number or a party's name typed again into the description, the outcome or a
note is masked there too for the same readers (:mod:`gridsvc.territory.textmask`), and so is
any other mobile phone or ID number in it. The API and the phone's feed write a case's text
through the same function, so both give the same text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from gridsvc.territory.codes import mask_id_number, mask_phone
from gridsvc.territory.textmask import mask_in_text

__all__ = [
    "CASE_TEXT_FIELDS",
    "case_text_is_clear",
    "mask_party_name",
    "masked_case_text",
    "masked_case_title",
]

#: the fields of a case (as the API writes it) that are free text beside its parties (the
#: title: :func:`masked_case_title`)
CASE_TEXT_FIELDS = ("description", "outcome", "rejection_reason")
_DIGIT = re.compile(r"\d")


def mask_party_name(name: str) -> str:
    """A party's name as a case shows it masked: the first character, a star for each other
    (张**; a one-character name 张*)."""
    name = (name or "").strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def case_text_is_clear(user: Any, handler_id: int | None, reported_by_id: int | None) -> bool:
    """Whether ``user`` reads a case's parties, and so its text, in clear: a superuser, the
    case's handler or its reporter (the rule of ``api.cases.serializers.write_parties``)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    uid = user.pk
    return bool(user.is_superuser or (uid is not None and uid in (handler_id, reported_by_id)))


def masked_case_text(
    text: str | None,
    parties: Iterable[Any] | None = None,
    name_mask: Callable[[str], str | None] = mask_party_name,
) -> str | None:
    """``text`` with the parties' names (``name_mask``: 张** as the case API writes a party;
    Open311 passes its own), phones (last four) and ID numbers (region + last four) masked, and
    any other mobile phone or ID number. Text without a digit and without a party is returned
    as it is, without a regular expression run over it (the case list is a measured fast
    path)."""
    if not text:
        return text
    names: list[str] = []
    known: list[tuple[str, str]] = []
    for party in parties or ():
        if not isinstance(party, dict):
            continue
        name = str(party.get("name") or "").strip()
        if len(name) >= 2 and name != "(reporter)":
            names.append(name)
        for key, masker in (("phone", mask_phone), ("id_number", mask_id_number)):
            value = str(party.get(key) or "")
            if value:
                known.append((value, masker(value) or ""))
    for name in names:
        if name in text:
            text = text.replace(name, name_mask(name) or "")
    if not _DIGIT.search(text):
        return text
    return mask_in_text(text, known)


def masked_case_title(title: str | None) -> str | None:
    """A case's title as a reader without the clear parties sees it: phones and ID numbers
    masked (the phone's feed writes the title without the parties, so the API does too:
    the same title in both)."""
    return masked_case_text(title)
