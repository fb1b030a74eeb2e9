"""API for the visits domain (走访). `register(router)` adds viewsets under /api/v1/;
`urlpatterns` are extra /api/v1/ paths; `root_urlpatterns` are mounted at the site root.

- /api/v1/visit-rules/                 rules (read; edited in the admin)
- /api/v1/visit-tasks/                 due tasks (scoped; ``?mine=1``, ``?status=``)
- /api/v1/visits/                      visit log (GET list/detail, POST one visit)
- /api/v1/visits/batch/                POST up to 500 visits from an offline phone
- /api/v1/visits/route/                today's due visits in walking order
- /api/v1/visits/coverage/             due / done / overdue / missed / flagged per grid|member
- /api/v1/visits/{id}/photos/          POST a photo to a stored visit (multipart)
- /api/v1/sync/changes/?since=         change feed for the phone
- /api/v1/sync/estimate/               what the member's phone will hold
- /api/v1/daily-reports/               一日一报 (GET, POST = upsert today's; neighbours read
                                       only their own)
- /api/v1/daily-reports/missing/       who has not reported (street / community view)
"""

from __future__ import annotations

from django.urls import path

from .views import (
    DailyReportViewSet,
    SyncChangesView,
    SyncEstimateView,
    VisitRuleViewSet,
    VisitTaskViewSet,
    VisitViewSet,
)

urlpatterns: list = [
    path("sync/changes/", SyncChangesView.as_view(), name="sync-changes"),
    path("sync/estimate/", SyncEstimateView.as_view(), name="sync-estimate"),
]
root_urlpatterns: list = []


def register(router) -> None:  # type: ignore[no-untyped-def]
    """Register this domain's viewsets on the /api/v1/ router."""
    router.register("visit-rules", VisitRuleViewSet, basename="visit-rule")
    router.register("visit-tasks", VisitTaskViewSet, basename="visit-task")
    router.register("visits", VisitViewSet, basename="visit")
    router.register("daily-reports", DailyReportViewSet, basename="daily-report")
