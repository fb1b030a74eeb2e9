"""Cases API: report, read, act on cases; the street dispatch queue; approvals; follow-ups;
mediation records; figures. Rules live in :mod:`gridsvc.cases.services`; views translate.

- ``GET/POST /api/v1/cases/`` — cases in your territory (and those you handle or reported);
  ``?mine=1`` for the cases you handle; ``?format=geojson`` for a FeatureCollection. POST
  reports a case: it is routed at once and the answer lists nearby open duplicates.
- ``GET /api/v1/cases/{id}/`` carries an ``ETag``; every change takes ``If-Match`` (412 when
  someone changed the case first). ``POST /api/v1/cases/{id}/{action}/`` applies a workflow
  action (409 with the allowed actions when the case's state does not allow it).
- ``/api/v1/dispatch/queue/`` and ``/api/v1/dispatch/{action}/`` for bulk actions.

Modules: :mod:`.scope` (which cases a caller sees, ids resolved through the scope),
:mod:`.inputs` (place, category, version), :mod:`.serializers`, :mod:`.filters`
(FilterSets: the list's ``?q=``, filters and ``ordering``), :mod:`.views` (cases, requests,
follow-ups, inbox), :mod:`.dispatch` (the street desk), :mod:`.assessment` (考核), and
:mod:`.urls` (the routes).

This package exports only what other modules use: the routes for :mod:`api.urls`, the
scoped case queryset for Open311 and the file downloads, and the upload limit for the phone
protocol's limits.
"""

from __future__ import annotations

from .inputs import MAX_PHOTO_BYTES
from .scope import case_queryset, visible_among
from .urls import register, root_urlpatterns, urlpatterns

__all__ = [
    "MAX_PHOTO_BYTES",
    "case_queryset",
    "register",
    "root_urlpatterns",
    "urlpatterns",
    "visible_among",
]
