"""The street office's supervision views (/api/v1/...):

- ``POST daily-reports/chase/`` {member, date} → 催报: one reminder in the member's inbox per
  member and day (201; a second chase of that day answers 200 with the first, sending
  nothing). Street desk, community cadres and the mediation committee only (403 otherwise);
  404 for a member whose report for that day is not missing or not in the caller's territory;
  400 naming ``date`` for a bad or future day (:mod:`gridsvc.supervision.chase`).
- ``GET staff/?grid=&community=&role=`` → 岗位通讯录: the posts held now in the caller's
  territory with role label, place, work contact (staff and street callers only), open cases
  and leave (:mod:`gridsvc.supervision.staff`).
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.scoping import request_scope
from api.visits.serializers import IdField, QueryDateField, QuerySerializer
from gridsvc.supervision import chase as chasing
from gridsvc.supervision.staff import ROLE_ORDER, staff_directory


class ChaseInput(serializers.Serializer):
    member = IdField(help_text="the member whose daily report is missing")
    date = QueryDateField(help_text="the day of the missing report, YYYY-MM-DD (not in the future)")


class ChaseSerializer(serializers.Serializer):
    member = serializers.IntegerField()
    date = serializers.DateField()
    chased_at = serializers.DateTimeField(help_text="when the member was first chased that day")
    message = serializers.IntegerField(help_text="the reminder in the member's inbox")
    title = serializers.CharField()


class DailyReportChaseView(APIView):
    """催报: remind a member who has not sent a day's report (一日一报 / 五员排查日报)."""

    @extend_schema(
        request=ChaseInput,
        responses={
            201: ChaseSerializer,
            200: ChaseSerializer,
            # 400 (field → messages), 403 and 404: the common error shapes (api/schema.py)
        },
    )
    def post(self, request: Request) -> Response:
        if not chasing.may_chase(request.user):
            raise PermissionDenied(
                "only the street desk, community cadres and the mediation committee chase reports"
            )
        ser = ChaseInput(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        answer, created = chasing.chase(
            request_scope(request), request.user, data["member"], data["date"]
        )
        return Response(
            ChaseSerializer(answer).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class StaffQuery(QuerySerializer):
    grid = IdField(required=False, help_text="posts in this grid (its buildings and units too)")
    community = IdField(required=False, help_text="posts in this community")
    role = serializers.ChoiceField(
        choices=[str(r) for r in ROLE_ORDER], required=False, help_text="one post type"
    )


class StaffRowSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    member = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.CharField()
    role_label = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.IntegerField(allow_null=True)
    territory_name = serializers.CharField()
    grid = serializers.IntegerField(allow_null=True)
    grid_name = serializers.CharField(allow_null=True)
    community = serializers.IntegerField(allow_null=True)
    community_name = serializers.CharField(allow_null=True)
    contact = serializers.CharField(
        allow_null=True, help_text="work phone; null for neighbour-tier callers or when none"
    )
    open_cases = serializers.IntegerField(help_text="open cases they handle (whole street)")
    on_leave = serializers.BooleanField()


class StaffView(APIView):
    """岗位通讯录: who holds which post in my territory, how to reach them, how busy they are."""

    @extend_schema(
        parameters=[StaffQuery],
        responses=inline_serializer(
            "StaffDirectory",
            {"count": serializers.IntegerField(), "results": StaffRowSerializer(many=True)},
        ),
    )
    def get(self, request: Request) -> Response:
        q: dict[str, Any] = StaffQuery.read(request.query_params)
        rows = staff_directory(
            request_scope(request),
            request.user,
            grid=q.get("grid"),
            community=q.get("community"),
            roles=[q["role"]] if q.get("role") else [],
        )
        return Response({"count": len(rows), "results": StaffRowSerializer(rows, many=True).data})


urlpatterns = [
    path("daily-reports/chase/", DailyReportChaseView.as_view(), name="daily-report-chase"),
    path("staff/", StaffView.as_view(), name="staff"),
]
