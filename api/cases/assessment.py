"""Assessment 考核 figures per member, grid, community or department, and the cases behind
one figure (drill-down). Formulas: :mod:`gridsvc.cases.assessment`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.cases import assessment

from .scope import case_queryset
from .serializers import (
    AssessmentCasesQuerySerializer,
    AssessmentQuerySerializer,
    CaseSerializer,
)


class AssessmentView(APIView):
    """考核: 按期处置率, 结案率, 按期结案率, 返工率, 超期未处置率, 延期率, on-the-spot count,
    weighted score and grade A–E per member, grid, community or outside department."""

    @extend_schema(parameters=[AssessmentQuerySerializer], responses={200: OpenApiTypes.OBJECT})
    def get(self, request):  # type: ignore[no-untyped-def]
        query = AssessmentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        by, since, until = (query.validated_data[k] for k in ("by", "since", "until"))
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

    @extend_schema(parameters=[AssessmentCasesQuerySerializer], responses=CaseSerializer(many=True))
    def get(self, request):  # type: ignore[no-untyped-def]
        query = AssessmentCasesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        v = query.validated_data
        try:
            qs = assessment.drill_down(
                case_queryset(request), v["by"], v["key"], v["figure"], v["since"], v["until"]
            )
        except ValueError as exc:
            raise ValidationError({"figure": str(exc)}) from None
        return Response(CaseSerializer(qs[:500], many=True, context={"request": request}).data)
