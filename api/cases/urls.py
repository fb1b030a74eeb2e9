"""Routes of the cases API under /api/v1/: the viewsets go on the shared router
(:func:`register`), the plain views are listed in :data:`urlpatterns` (nothing is added to a
module-level list at run time)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import BaseRouter

from .assessment import AssessmentCasesView, AssessmentView
from .dispatch import BulkActionView, CaseCandidatesView, DispatchQueueView
from .views import (
    CaseRequestViewSet,
    CaseViewSet,
    CategoryViewSet,
    DepartmentViewSet,
    FollowUpViewSet,
    InboxViewSet,
)

#: prefix → (viewset, basename) on the /api/v1/ router.
VIEWSETS = {
    "categories": (CategoryViewSet, "category"),
    "departments": (DepartmentViewSet, "department"),
    "cases": (CaseViewSet, "case"),
    "case-requests": (CaseRequestViewSet, "case-request"),
    "follow-ups": (FollowUpViewSet, "follow-up"),
    "inbox": (InboxViewSet, "inbox"),
}

urlpatterns = [
    path("assessment/", AssessmentView.as_view(), name="assessment"),
    path("assessment/cases/", AssessmentCasesView.as_view(), name="assessment-cases"),
    path("dispatch/queue/", DispatchQueueView.as_view(), name="dispatch-queue"),
    path("cases/<int:pk>/candidates/", CaseCandidatesView.as_view(), name="case-candidates"),
    path("dispatch/<str:name>/", BulkActionView.as_view(), name="dispatch-action"),
]

#: Nothing of the cases API is mounted at the site root.
root_urlpatterns: list = []


def register(router: BaseRouter) -> None:
    """Register this domain's viewsets on the /api/v1/ router."""
    for prefix, (viewset, basename) in VIEWSETS.items():
        router.register(prefix, viewset, basename=basename)
