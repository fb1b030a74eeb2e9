"""Chain API: the 五位一体 chain for a place, positions with history, and "me"."""

from __future__ import annotations

from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from gridsvc.accounts.authentication import Rider, ride_with_caller
from gridsvc.chain.answer import (
    Resolved,
    point_resolved,
    point_statement,
    ref_statement,
    resolve_point,
    resolve_ref,
)
from gridsvc.chain.answer import answer as chain_answer
from gridsvc.chain.models import Position
from gridsvc.chain.services import hand_over_by, walk
from gridsvc.community.languages import active_memberships, role_name
from gridsvc.community.models import Team, TeamMembership
from gridsvc.territory.models import Compound, Grid
from gridsvc.territory.services import locate

from .fields import CLIENT_TIME_RANGE, ClientDateTimeField, client_time_param
from .scoping import ScopedQuerysetMixin, request_scope


class PositionSerializer(serializers.ModelSerializer):
    member_name = serializers.CharField(source="member.__str__", read_only=True)
    position_label = serializers.CharField(source="get_position_type_display", read_only=True)
    target_type = serializers.CharField(source="target_field", read_only=True)
    target_id = serializers.SerializerMethodField()

    class Meta:
        model = Position
        fields = [
            "id",
            "position_type",
            "position_label",
            "member",
            "member_name",
            "target_type",
            "target_id",
            "valid_from",
            "valid_to",
            "on_leave",
            "note",
        ]

    def get_target_id(self, obj: Position) -> int | None:
        return getattr(obj, f"{obj.target_field}_id")


class HandOverSerializer(serializers.Serializer):
    member = serializers.IntegerField(help_text="the member who takes the post over")
    when = ClientDateTimeField(
        required=False, help_text="when the post changed hands (default now; not ahead)"
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class HandOverResultSerializer(serializers.Serializer):
    closed = PositionSerializer(help_text="the post as it was, now closed (valid_to)")
    opened = PositionSerializer(help_text="the same post held by the new member")
    created = serializers.BooleanField(help_text="false: this hand-over had been made before")


class PositionViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """Positions (岗位任职) with history. ``?at=ISO time`` answers who held what at that time.
    ``POST /positions/{id}/hand-over/`` hands a post over (交接)."""

    base_queryset = Position.objects.select_related("member")
    serializer_class = PositionSerializer
    filterset_fields = ["position_type", "member", "grid", "compound", "building", "unit"]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "at",
                OpenApiTypes.DATETIME,
                description=f"held at time: ISO 8601, {CLIENT_TIME_RANGE}",
            )
        ]
    )
    def list(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return super().list(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = super().get_queryset()
        at = self.request.query_params.get("at")
        if at:
            qs = qs.held_at(client_time_param(at, "at"))
        return qs

    @extend_schema(
        request=HandOverSerializer,
        responses={201: HandOverResultSerializer, 200: HandOverResultSerializer},
    )
    @action(detail=True, methods=["post"], url_path="hand-over")
    def hand_over(self, request, pk=None):  # type: ignore[no-untyped-def]
        """Hand this post over to another member (交接): the post is closed now (or at
        ``when``) and the same post opened for ``member``; their phones' next sync drops and
        brings the territory. The street dispatcher for any post in the street, the community
        cadre of a grid for its field posts (``gridsvc.chain.services.hand_over_by``).
        Idempotent: the same hand-over again answers 200 with the same successor."""
        from django.contrib.auth import get_user_model

        position = self.get_object()
        body = HandOverSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        new_member = get_user_model().objects.filter(pk=data["member"]).first()
        if new_member is None:
            raise ValidationError({"member": ["not found"]})
        # a refusal (HandOverError) is answered by api.errors.exception_handler
        opened, created = hand_over_by(
            request.user, position, new_member, when=data.get("when"), note=data["note"]
        )
        position.refresh_from_db()
        return Response(
            {
                "closed": PositionSerializer(position).data,
                "opened": PositionSerializer(opened).data,
                "created": created,
            },
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _float_param(params, name: str, lo: float, hi: float) -> float:  # type: ignore[no-untyped-def]
    try:
        value = float(params[name])
    except (KeyError, ValueError):
        raise ValidationError({name: "must be a number"}) from None
    if not (lo <= value <= hi):
        raise ValidationError({name: f"must be between {lo} and {hi}"})
    return value


# What locate() and walk() read of a household/unit/building reference, fetched with it
# instead of one query per hop (unit, building, compound, grid, community, street, head: 7):
# the reference with its unit, building (and head) in one query, then the grid with its
# community and street, and the compound. Not one eight-table join: planning that costs more
# than the three queries. Geometries other than the building's point, and the head's
# encrypted fields, are not read here and are not fetched.
_UP_PREFETCH = (
    (
        "grid",
        Grid.objects.select_related("community__street").defer(
            "boundary", "community__boundary", "community__street__boundary"
        ),
    ),
    ("compound", Compound.objects.defer("boundary")),
)


def _ref_queryset(name: str, model):  # type: ignore[no-untyped-def]
    to_building = {"household": "unit__building__", "unit": "building__", "building": ""}
    if name not in to_building:
        return model.objects.all()
    path = to_building[name]
    qs = model.objects.defer(f"{path}footprint")
    if path:
        qs = qs.select_related(path.rstrip("_"))
    if name == "household":
        qs = qs.select_related("head").defer("head__id_number", "head__phone")
    return qs.prefetch_related(
        *(Prefetch(f"{path}{attr}", queryset=related) for attr, related in _UP_PREFETCH)
    )


class ChainView(APIView):
    """The chain of responsible holders for a household, unit, building, compound or point.

    Exactly one of ``household``, ``unit``, ``building``, ``compound`` (ids) or
    ``lon``+``lat`` (in ``crs``: wgs84 by default, gcj02, bd09, cgcs2000 or an EPSG alias;
    an unknown one is a 400 naming ``crs``). Each level comes with its holder or why it is
    skipped.
    """

    _parsed: tuple | None = None
    _rider: Rider | None = None

    @staticmethod
    def _parse(params) -> tuple:  # type: ignore[no-untyped-def]
        """``(name, pk, when)`` for a reference, ``("point", (lon, lat), when)`` (WGS84) for
        a point; the 400s of a malformed request."""
        refs = ("household", "unit", "building", "compound")
        given = [k for k in refs if k in params]
        has_point = "lon" in params or "lat" in params
        if len(given) + (1 if has_point else 0) != 1:
            raise ValidationError(
                {"detail": "give exactly one of household, unit, building, compound or lon+lat"}
            )
        from geo.crs import UnsupportedCRS, normalize_crs, to_wgs84

        try:
            crs = normalize_crs(params.get("crs") or "wgs84")
        except UnsupportedCRS as exc:
            raise ValidationError({"crs": str(exc)}) from None
        when = None
        if "at" in params:
            when = client_time_param(params["at"], "at")
        when = when or timezone.now()
        if given:
            name = given[0]
            try:
                pk = int(params[name])
            except ValueError:
                raise ValidationError({name: "must be an integer id"}) from None
            return name, pk, when
        lon = _float_param(params, "lon", -180, 180)
        lat = _float_param(params, "lat", -90, 90)
        return "point", to_wgs84(lon, lat, crs), when

    def initial(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        # a JWT request's chain statement rides with the caller's query (one round trip;
        # gridsvc.accounts.authentication): it does not depend on the caller, whose
        # territory decides afterwards; a malformed request is answered after authentication
        if request.META.get("HTTP_AUTHORIZATION"):
            try:
                parsed = self._parse(request.query_params)
            except Exception:  # noqa: BLE001 - get() raises it again, after authentication
                parsed = None
            if parsed is not None and parsed[0] != "compound":
                name, what, when = parsed
                statement = (
                    point_statement(*what, when)
                    if name == "point"
                    else ref_statement(name, what, when)
                )
                self._parsed = parsed
                self._rider = ride_with_caller(request, *statement)
        super().initial(request, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter("household", int),
            OpenApiParameter("unit", int),
            OpenApiParameter("building", int),
            OpenApiParameter("compound", int),
            OpenApiParameter("lon", float),
            OpenApiParameter("lat", float),
            OpenApiParameter(
                "crs",
                str,
                description="coordinates of lon/lat: wgs84 (default), gcj02 (Amap/Tencent), "
                "bd09 (Baidu), cgcs2000; EPSG:4326, EPSG:4490 too",
                enum=["wgs84", "gcj02", "bd09", "cgcs2000"],
            ),
            OpenApiParameter(
                "at",
                OpenApiTypes.DATETIME,
                description=f"the chain as it was at this time (default now): ISO 8601, "
                f"{CLIENT_TIME_RANGE}",
            ),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        scope = request_scope(request)
        name, what, when = self._parsed or self._parse(request.query_params)
        rider = self._rider if self._rider is not None and self._rider.ran else None
        if name == "compound":  # rare: a compound's point on surface, the general path
            obj = scope.filter(_ref_queryset(name, Compound).filter(pk=what)).first()
            if obj is None:
                raise NotFound(f"{name} {what} not found in your territory")
            return Response(walk(locate(**{name: obj}), when).as_dict())
        if name != "point":
            pk = what
            # place, names and holders in one statement; the territory from its ids
            if rider is not None:
                res = None if rider.row is None else Resolved(rider.row)
            else:
                res = resolve_ref(name, pk, when)
            if res is None or not scope.allows_building_level(
                name,
                building_id=res.building_id,
                unit_id=res.unit_id,
                compound_id=res.compound_id,
                grid_id=res.grid_id,
                community_id=res.community_id,
                street_id=res.street_id,
            ):
                raise NotFound(f"{name} {pk} not found in your territory")
        else:
            lon, lat = what
            if rider is not None and rider.row is not None:
                res = point_resolved(rider.row)
            else:
                res = resolve_point(lon, lat, when)
            if not scope.allows_grid(
                res.grid_id, community_id=res.community_id, street_id=res.street_id
            ):
                raise NotFound("this point is outside your territory")
        return Response(chain_answer(res, when))


class MeMembershipSerializer(serializers.ModelSerializer):
    """One of the caller's own team memberships (五员, 一格十员, 志愿者服务队 …) running today:
    the field app shows the 五员一日一报 only to a 五员 member, and names a membership when it
    records service hours (志愿服务时长)."""

    team_name = serializers.CharField(source="get_team_display", read_only=True)
    role_name = serializers.SerializerMethodField()
    community_name = serializers.CharField(source="community.name", read_only=True)
    five_members = serializers.SerializerMethodField()

    class Meta:
        model = TeamMembership
        fields = [
            "id",
            "team",
            "team_name",
            "five_members",
            "role",
            "role_name",
            "community",
            "community_name",
            "grid",
            "valid_from",
            "valid_to",
            "on_leave",
            "hours",
        ]

    def get_role_name(self, obj: TeamMembership) -> str:
        """调处员, 东乡语 (a 民族语言翻译员's language), or a free-text role as written."""
        return role_name(obj.team, obj.role)

    def get_five_members(self, obj: TeamMembership) -> bool:
        """A 五员 membership: its member files the 五员一日一报."""
        return obj.team == Team.FIVE_MEMBERS


class MeView(APIView):
    """The caller: account, current positions, own team memberships (``unity_memberships``:
    五员 and the other teams of the 民族团结 work, running today) and the size of their
    territory."""

    @extend_schema(
        responses={
            200: inline_serializer(
                "Me",
                {
                    "id": serializers.IntegerField(),
                    "username": serializers.CharField(),
                    "display_name": serializers.CharField(),
                    "positions": PositionSerializer(many=True),
                    "unity_memberships": MeMembershipSerializer(many=True),
                    "territory": inline_serializer(
                        "MeTerritory",
                        {
                            "everything": serializers.BooleanField(),
                            "households": serializers.IntegerField(),
                        },
                    ),
                },
            )
        }
    )
    def get(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.territory.models import Household as H

        user = request.user
        positions = Position.objects.held_at().filter(member=user).select_related("member")
        scope = request_scope(request)
        memberships = active_memberships(
            TeamMembership.objects.filter(member=user), timezone.localdate()
        ).select_related("community")
        return Response(
            {
                "id": user.pk,
                "username": user.username,
                "display_name": str(user),
                "positions": PositionSerializer(positions, many=True).data,
                "unity_memberships": MeMembershipSerializer(memberships, many=True).data,
                "territory": {
                    "everything": scope.everything,
                    "households": scope.filter(H.objects.all()).count(),
                },
            }
        )
