"""Assessment 考核 figures per member, grid, community or department, and the cases behind
one figure (drill-down). Formulas: :mod:`gridsvc.cases.assessment`."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .scope import case_queryset
from .serializers import CaseSerializer


def _period(request):  # type: ignore[no-untyped-def]
    from datetime import date

    today = timezone.localdate()
    first = today.replace(day=1)
    out = []
    for name, default in (("since", first), ("until", today + timedelta(days=1))):
        raw = request.query_params.get(name)
        if not raw:
            out.append(default)
            continue
        try:
            out.append(date.fromisoformat(raw))
        except ValueError:
            raise ValidationError({name: "a date YYYY-MM-DD"}) from None
    if out[0] >= out[1]:
        raise ValidationError({"until": "must be after since"})
    if (out[1] - out[0]).days > 3660:
        raise ValidationError({"until": "a period of at most ten years"})
    return out


BY_PARAM = OpenApiParameter(
    "by", str, enum=["member", "grid", "community", "department"], required=False
)

PERIOD_PARAMS = [
    OpenApiParameter("since", OpenApiTypes.DATE, required=False, description="first day"),
    OpenApiParameter("until", OpenApiTypes.DATE, required=False, description="day after the last"),
]


class AssessmentView(APIView):
    """考核: 按期处置率, 结案率, 按期结案率, 返工率, 超期未处置率, 延期率, on-the-spot count,
    weighted score and grade A–E per member, grid, community or outside department."""

    @extend_schema(parameters=[BY_PARAM, *PERIOD_PARAMS], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.cases import assessment

        by = request.query_params.get("by", "grid")
        if by not in assessment.GROUPS:
            raise ValidationError({"by": f"one of {', '.join(assessment.GROUPS)}"})
        since, until = _period(request)
        rows = assessment.assess(case_queryset(request), by, since, until)
        weights, grades = assessment.scheme()
        return Response(
            {
                "by": by,
                "since": since,
                "until": until,
                "weights": weights,
                "grades": grades,
                "rows": rows,
            }
        )


class AssessmentCasesView(APIView):
    """The cases behind one figure of one row (drill-down)."""

    @extend_schema(
        parameters=[
            BY_PARAM,
            *PERIOD_PARAMS,
            OpenApiParameter("key", int, required=True),
            OpenApiParameter("figure", str, required=True),
        ],
        responses=CaseSerializer(many=True),
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.cases import assessment

        by = request.query_params.get("by", "grid")
        if by not in assessment.GROUPS:
            raise ValidationError({"by": f"one of {', '.join(assessment.GROUPS)}"})
        try:
            key = int(request.query_params.get("key", ""))
        except ValueError:
            raise ValidationError(
                {"key": "the id of the member/grid/community/department"}
            ) from None
        since, until = _period(request)
        figure = request.query_params.get("figure", "")
        try:
            qs = assessment.drill_down(case_queryset(request), by, key, figure, since, until)
        except ValueError as exc:
            raise ValidationError({"figure": str(exc)}) from None
        return Response(CaseSerializer(qs[:500], many=True, context={"request": request}).data)
