"""Case search (案件检索) for the street office page and the phones: ``?q=`` on the case list.

Words are matched case-insensitively and each word must match somewhere: the case number
(案件编号), its title and description (already shown in the list), the category's name, and
the address of its place — building (楼栋 name, code, address), compound (小区) and grid
(网格) names. Parties (当事人) and residents are never searched: a search must not tell who
is a party to which case (personal data, see DESIGN.md "Privacy"); household rooms are not
searched either, so a search cannot narrow a case down to one door.

Free text is searched only as the reader sees it (:mod:`gridsvc.cases.textmask`): a reader
who sees a case's parties masked sees names, phones and ID numbers typed into its description
masked too, so its description is searched only for the cases the reader reads in clear (the
handler, the reporter; a superuser: all), and a word with a run of five digits or more (a
phone or ID number, or part of one) is matched in titles only there as well — else searching
"13912345678" or a party's name typed into a note would tell what the mask hides.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet

if TYPE_CHECKING:
    from .models import Case

#: Words beyond this many are ignored (a search box, not a query language).
MAX_WORDS = 6
#: Characters of ``q`` that are read.
MAX_LENGTH = 100

#: The fields one word is matched against by every reader (never parties, residents or
#: household rooms; free text: :data:`TEXT_FIELDS`).
SEARCH_FIELDS = (
    "number",
    "category__name",
    "building__name",
    "building__code",
    "building__address",
    "compound__name",
    "grid__name",
)
#: a phone, an ID number, or a part of one long enough to confirm it
_DIGIT_RUN = re.compile(r"\d{5,}")


def search_words(q: str) -> list[str]:
    """The words of a search text: split on white space (also the ideographic space),
    at most :data:`MAX_WORDS`."""
    return (q or "")[:MAX_LENGTH].replace("\u3000", " ").split()[:MAX_WORDS]


def search_cases(qs: QuerySet[Case], q: str, reader: Any = None) -> QuerySet[Case]:
    """Narrow a case queryset (already limited to the caller's territory) to the cases that
    match every word of ``q`` as ``reader`` sees them (None: every field of every case, for
    the server's own use); an empty ``q`` leaves it as it is."""
    pk = getattr(reader, "pk", None)
    if reader is None or getattr(reader, "is_superuser", False):
        in_clear = Q()
    elif pk is None:  # no one (an anonymous caller): no case in clear
        in_clear = Q(pk__in=[])
    else:
        in_clear = Q(handler_id=pk) | Q(reported_by_id=pk)
    for word in search_words(q):
        match = Q()
        for field in SEARCH_FIELDS:
            match |= Q(**{f"{field}__icontains": word})
        title = Q(title__icontains=word)
        match |= (title & in_clear) if _DIGIT_RUN.search(word) else title
        match |= Q(description__icontains=word) & in_clear
        qs = qs.filter(match)
    return qs
