"""Case search (案件检索) for the street office page and the phones: ``?q=`` on the case list.

Words are matched case-insensitively and each word must match somewhere: the case number
(案件编号), its title and description (already shown in the list), the category's name, and
the address of its place — building (楼栋 name, code, address), compound (小区) and grid
(网格) names. Parties (当事人) and residents are never searched: a search must not tell who
is a party to which case (personal data, see DESIGN.md "Privacy"); household rooms are not
searched either, so a search cannot narrow a case down to one door.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

if TYPE_CHECKING:
    from .models import Case

#: Words beyond this many are ignored (a search box, not a query language).
MAX_WORDS = 6
#: Characters of ``q`` that are read.
MAX_LENGTH = 100

#: The fields one word is matched against (never parties, residents or household rooms).
SEARCH_FIELDS = (
    "number",
    "title",
    "description",
    "category__name",
    "building__name",
    "building__code",
    "building__address",
    "compound__name",
    "grid__name",
)


def search_words(q: str) -> list[str]:
    """The words of a search text: split on white space (also the ideographic space),
    at most :data:`MAX_WORDS`."""
    return (q or "")[:MAX_LENGTH].replace("\u3000", " ").split()[:MAX_WORDS]


def search_cases(qs: QuerySet[Case], q: str) -> QuerySet[Case]:
    """Narrow a case queryset (already limited to the caller's territory) to the cases that
    match every word of ``q``; an empty ``q`` leaves it as it is."""
    for word in search_words(q):
        match = Q()
        for field in SEARCH_FIELDS:
            match |= Q(**{f"{field}__icontains": word})
        qs = qs.filter(match)
    return qs
