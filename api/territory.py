"""Territory API: streets, communities, grids, compounds, buildings, units, households,
residents and places; all limited to the caller's territory."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework_gis.filters import InBBoxFilter
from rest_framework_gis.serializers import GeoFeatureModelSerializer

from gridsvc.audit.models import AuditEntry
from gridsvc.audit.services import record, record_unmasked_reads
from gridsvc.chain import visibility
from gridsvc.chain.visibility import Tier, Viewer, present_household
from gridsvc.crypto import keyed_hash
from gridsvc.territory.codes import (
    ETHNICITIES,
    ethnicity_code,
    id_birth_date,
    id_contradictions,
    id_sex,
    validate_id_number,
)
from gridsvc.territory.models import (
    Building,
    Community,
    Compound,
    Grid,
    Household,
    Place,
    Resident,
    Street,
    Unit,
)

from .crs import Wgs84OnlyCrsFilter
from .pagination import GeoPagination
from .privacy import RESIDENT_SENSITIVE_FIELDS, UnmaskAuditMixin, mask_resident, viewer
from .scoping import ScopedQuerysetMixin, request_scope


# ---------------------------------------------------------------- serializers
class StreetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Street
        fields = ["id", "code", "name"]


class CommunitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Community
        fields = ["id", "code", "name", "street"]


class GridSerializer(GeoFeatureModelSerializer):
    responsible_body = serializers.CharField(source="responsible_body_display", read_only=True)
    building_count = serializers.IntegerField(read_only=True)
    household_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Grid
        geo_field = "boundary"
        fields = [
            "id",
            "code",
            "name",
            "community",
            "parent",
            "responsible_body",
            "building_count",
            "household_count",
        ]


class CompoundSerializer(GeoFeatureModelSerializer):
    class Meta:
        model = Compound
        geo_field = "boundary"
        fields = ["id", "code", "name", "community", "property_company"]


class BuildingSerializer(GeoFeatureModelSerializer):
    class Meta:
        model = Building
        geo_field = "footprint"
        fields = ["id", "code", "name", "address", "floors", "grid", "compound"]


class PlaceSerializer(GeoFeatureModelSerializer):
    class Meta:
        model = Place
        geo_field = "point"
        fields = ["id", "kind", "name", "address", "grid", "community"]


class UnitSerializer(serializers.ModelSerializer):
    class Meta:
        model = Unit
        fields = ["id", "building", "number"]


class HouseholdSerializer(serializers.ModelSerializer):
    building = serializers.IntegerField(source="unit.building_id", read_only=True)
    grid = serializers.IntegerField(source="unit.building.grid_id", read_only=True)
    head_name = serializers.CharField(source="head.name", read_only=True, default=None)
    resident_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Household
        fields = [
            "id",
            "unit",
            "building",
            "grid",
            "room",
            "floor",
            "tenure",
            "head",
            "head_name",
            "resident_count",
        ]

    def to_representation(self, instance: Household) -> dict:
        """Without ``tenure`` for neighbours (廉租房 / 公租房 is housing assistance)."""
        data = super().to_representation(instance)
        request = self.context.get("request")
        tier = viewer(request).tier_of(instance) if request is not None else Tier.NEIGHBOUR
        return present_household(data, tier)


class ResidentSerializer(serializers.ModelSerializer):
    """A resident, shown through the visibility matrix (``gridsvc.chain.visibility``): ID
    number, phone, ethnicity and sensitive tags masked for staff, ethnicity and sensitive tags
    absent for neighbours (楼长, 单元长, 物业, 业委会), the birth year instead of the birth
    date (``birth_date`` is accepted on write; shown only under an unmask grant)."""

    ethnicity = serializers.CharField(
        required=False,
        help_text="GB/T 3304 code (e.g. 03) or name (回族 / Hui); absent for neighbours",
    )
    ethnicity_name = serializers.SerializerMethodField()
    birth_year = serializers.SerializerMethodField()
    masked = serializers.ListField(child=serializers.CharField(), read_only=True)
    tags = serializers.ListField(
        child=serializers.ChoiceField(choices=Resident.Tag.choices), required=False
    )
    tags_reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="why the tags change (kept in the status history with who and when)",
    )

    class Meta:
        model = Resident
        fields = [
            "id",
            "household",
            "no_house_reason",
            "name",
            "gender",
            "birth_date",
            "birth_year",
            "id_number",
            "phone",
            "ethnicity",
            "ethnicity_name",
            "residency",
            "origin_place",
            "relation_to_head",
            "tags",
            "tags_reason",
            "masked",
        ]
        extra_kwargs = {
            "birth_date": {
                "write_only": True,
                "help_text": "write only; shown (besides birth_year) only under an unmask grant",
            }
        }

    def _viewer(self) -> Viewer | None:
        request = self.context.get("request")
        return viewer(request) if request is not None else None

    def get_ethnicity_name(self, obj: Resident) -> str | None:
        return ETHNICITIES.get(obj.ethnicity, ("", ""))[0] or None

    def get_birth_year(self, obj: Resident) -> int | None:
        return visibility.birth_year(obj.birth_date)

    def validate_tags(self, value: list[str]) -> list[str]:
        """Neighbours may not set a sensitive tag (they may not know it); tags the caller
        cannot see are kept on update (a write never removes what its writer cannot see)."""
        seen = self._viewer()
        if seen is None:
            return value
        tier = seen.tier_of(self.instance) if self.instance is not None else seen.tier
        if not visibility.knows_sensitive(tier):
            bad = sorted(set(value) & visibility.SENSITIVE_TAGS)
            if bad:
                raise serializers.ValidationError("these tags are not yours to set")
        if self.instance is not None:
            shown = set(visibility.visible_tags(self.instance.tags, tier, seen.unmasked))
            kept = [t for t in self.instance.tags if t not in shown and t not in value]
            value = [*value, *kept]
        return value

    def validate_id_number(self, value: str) -> str:
        if not value:
            return value
        try:
            return validate_id_number(value)
        except Exception as exc:  # django ValidationError → field error
            raise serializers.ValidationError(getattr(exc, "messages", [str(exc)])) from None

    def validate_ethnicity(self, value: str) -> str:
        try:
            return ethnicity_code(value)
        except Exception as exc:
            raise serializers.ValidationError(getattr(exc, "messages", [str(exc)])) from None

    def validate_household(self, value: Household | None) -> Household | None:
        request = self.context.get("request")
        if value is not None and request is not None:
            scope = request_scope(request)
            if not scope.filter(Household.objects.filter(pk=value.pk)).exists():
                raise serializers.ValidationError("household not found in your territory")
        return value

    def validate(self, attrs: dict) -> dict:
        self._reconcile_id_number(attrs)
        household = attrs.get("household", getattr(self.instance, "household", None))
        reason = attrs.get("no_house_reason", getattr(self.instance, "no_house_reason", ""))
        if household is None and not reason:
            raise serializers.ValidationError(
                {"no_house_reason": "a resident without a household needs a reason (无房原因)"}
            )
        request = self.context.get("request")
        if household is None and request is not None:
            scope = request_scope(request)
            if not (scope.everything or scope.street_ids):
                raise serializers.ValidationError(
                    {"household": "only the street office records residents with no house"}
                )
        return attrs

    def _reconcile_id_number(self, attrs: dict) -> None:
        """Birth date and sex must agree with the ID number (GB 11643: 出生日期码, 顺序码):
        a contradiction is a 400 naming the field; left out, they are taken from the number.
        A new number replaces the birth date and sex it implies unless they are sent too."""
        inst = self.instance
        number = attrs.get("id_number", getattr(inst, "id_number", "") or "")
        if not number:
            return
        changed = "id_number" in attrs
        born = attrs.get("birth_date") if "birth_date" in attrs else None
        sex = attrs.get("gender", "") if "gender" in attrs else ""
        if inst is not None and not changed:
            born = born if "birth_date" in attrs else inst.birth_date
            sex = sex if "gender" in attrs else inst.gender
        try:
            errors = id_contradictions(number, born, sex)
        except ValueError:  # a number stored before validation: nothing to compare with
            return
        if errors:
            raise serializers.ValidationError({k: [v] for k, v in errors.items()})
        if born is None:
            attrs["birth_date"] = id_birth_date(number)
        if not sex:
            attrs["gender"] = id_sex(number)

    def save(self, **kwargs) -> Resident:  # type: ignore[no-untyped-def]
        """Saves with who and why recorded in the status history (tag changes)."""
        from gridsvc.territory.history import status_change

        reason = self.validated_data.pop("tags_reason", "")
        request = self.context.get("request")
        with status_change(getattr(request, "user", None), reason or "API"):
            return super().save(**kwargs)

    def to_representation(self, instance: Resident) -> dict:
        data = super().to_representation(instance)
        data["birth_date"] = None  # the matrix decides whether the date is shown
        return mask_resident(data, instance, self.context.get("request"))


class StaleResidentSerializer(serializers.Serializer):
    """412 on a resident: the server's copy in ``current`` (schema only)."""

    code = serializers.CharField(help_text="stale_version")
    detail = serializers.CharField()
    current = ResidentSerializer()


# ---------------------------------------------------------------- filters
class BuildingFilter(filters.FilterSet):
    orphan = filters.BooleanFilter(
        field_name="grid", lookup_expr="isnull", help_text="only buildings in no grid"
    )

    class Meta:
        model = Building
        fields = ["grid", "compound", "code"]


class HouseholdFilter(filters.FilterSet):
    building = filters.NumberFilter(field_name="unit__building")
    grid = filters.NumberFilter(field_name="unit__building__grid")
    tenure = filters.ChoiceFilter(choices=Household.Tenure.choices, method="by_tenure")

    class Meta:
        model = Household
        fields = ["unit", "building", "grid", "tenure"]

    def by_tenure(self, queryset, name, value):  # type: ignore[no-untyped-def]
        """Households of tenure ``value``: a 400 for neighbours (the tenure tells housing
        assistance), limited to the staff part for a member who is also a neighbour."""
        queryset = queryset.filter(tenure=value)
        if self.request is None:
            return queryset
        seen = viewer(self.request)
        if not visibility.household_filter_allowed("tenure", seen.tier):
            raise ValidationError({"tenure": "not a filter your role may use"})
        if seen.staff is not None:
            queryset = seen.staff.filter(queryset)
        return queryset


SEARCH_BY_POST = (
    'search by ID number with POST /api/v1/residents/search/ and {"id_number": ...} in the '
    "body: a number in the URL is written to access logs and browser history"
)


def search_by_id_number(request, queryset: QuerySet, value: str) -> QuerySet:  # type: ignore[no-untyped-def]
    """Residents of ``queryset`` whose ID number is ``value``: exact match through the keyed
    hash (the number is stored encrypted), in the caller's territory (the staff part of it for
    a member who is also a neighbour); a 400 naming ``id_number`` for a bad number and for
    neighbours, who may not look people up by number. Each search is written to the audit log
    with what it found, never the number itself."""
    try:
        number = validate_id_number(value)
    except Exception as exc:  # django ValidationError → field error
        raise ValidationError({"id_number": getattr(exc, "messages", [str(exc)])}) from None
    seen = viewer(request)
    if seen.tier < Tier.STAFF:
        raise ValidationError({"id_number": "not a search your role may use"})
    if seen.staff is not None:
        queryset = seen.staff.filter(queryset)
    queryset = queryset.filter(id_number_hash=keyed_hash(number))
    found = list(queryset.values_list("pk", flat=True)[:20])
    record(
        request.user,
        AuditEntry.Action.OTHER,
        object_type="resident",
        object_id=found[0] if len(found) == 1 else "",
        fields=["id_number"],
        reason="search by ID number",
        ip=request.META.get("REMOTE_ADDR"),
        detail={"search": "id_number", "found": found},
    )
    return queryset


class ResidentSearchSerializer(serializers.Serializer):
    id_number = serializers.CharField(
        max_length=32,
        help_text="exact ID number (18 characters or 15 digits, any case), matched by its "
        "keyed hash; staff and street only; every search is audited (without the number)",
    )


class ResidentFilter(filters.FilterSet):
    tag = filters.ChoiceFilter(
        field_name="tags", lookup_expr="contains", choices=Resident.Tag.choices, method="by_tag"
    )
    building = filters.NumberFilter(field_name="household__unit__building")
    id_number = filters.CharFilter(
        method="by_id_number",
        help_text="refused (400): a query string is written to access logs, browser history "
        "and proxies in clear; search by ID number with POST residents/search/ instead",
    )

    class Meta:
        model = Resident
        fields = ["household", "residency", "building", "id_number"]

    def by_id_number(self, queryset, name, value):  # type: ignore[no-untyped-def]
        """Refused: an ID number in the URL lands in gunicorn's and nginx's access logs,
        the browser's history and any proxy in clear. A 400 naming ``id_number`` points to
        ``POST /api/v1/residents/search/`` (the number in the body)."""
        raise ValidationError({"id_number": [SEARCH_BY_POST]})

    def by_tag(self, queryset, name, value):  # type: ignore[no-untyped-def]
        """Residents with tag ``value``. A sensitive tag is a 400 for neighbours (楼长, 单元长,
        物业, 业委会: a filter is a way to learn it) and limited to the staff part of the
        territory for a member who is also a neighbour elsewhere."""
        queryset = queryset.filter(tags__contains=[value])
        if value not in visibility.SENSITIVE_TAGS or self.request is None:
            return queryset
        seen = viewer(self.request)
        if not visibility.knows_sensitive(seen.tier):
            raise ValidationError({"tag": f"{value!r} is not a filter your role may use"})
        if seen.staff is not None:
            queryset = seen.staff.filter(queryset)
        return queryset


# ---------------------------------------------------------------- views
class IdNumberTaken(APIException):
    """409: the ID number is already recorded for another resident of the street."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "duplicate"

    def __init__(self) -> None:
        super().__init__(
            {
                "id_number": [
                    "这个身份证号已登记在本街道的另一位居民名下 (this ID number is already "
                    "recorded for another resident of this street)"
                ]
            }
        )


class ReadOnlyScoped(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class DistrictStreetRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()


class DistrictSerializer(serializers.Serializer):
    """区 above the streets. A street office reads its district's ``id`` and ``name`` only;
    the district's 创建 office also its ``code``, ``streets`` and ``boundary``."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField(required=False, help_text="absent when read by name only")
    streets = DistrictStreetRefSerializer(
        many=True, required=False, help_text="absent when read by name only"
    )
    boundary = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="GeoJSON MultiPolygon (WGS84): its own, else the union of its streets'; "
        "absent when read by name only",
    )


class DistrictFeaturePropertiesSerializer(serializers.Serializer):
    layer = serializers.ChoiceField(choices=["district", "street"])
    id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField(required=False, help_text="absent when read by name only")
    district = serializers.IntegerField(required=False, help_text="a street's district")


class DistrictFeatureSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["Feature"])
    id = serializers.IntegerField()
    geometry = serializers.JSONField(
        allow_null=True, help_text="GeoJSON MultiPolygon (WGS84); null when read by name only"
    )
    properties = DistrictFeaturePropertiesSerializer()


class DistrictFeatureCollectionSerializer(serializers.Serializer):
    """``districts/map/``: the districts the caller reads, and for their 创建 office the
    district's streets, as one GeoJSON FeatureCollection (``properties.layer`` tells which)."""

    type = serializers.ChoiceField(choices=["FeatureCollection"])
    features = DistrictFeatureSerializer(many=True)


def _district_features(district, full: bool) -> list[dict]:  # type: ignore[no-untyped-def]
    """The district as map features under the rules of ``/districts/``: by name only, a
    feature without geometry; in full, its outline and each of its streets' outlines."""
    import json

    body = _district_body(district, full)
    if not full:
        props = {"layer": "district", "id": district.pk, "name": district.name}
        return [{"type": "Feature", "id": district.pk, "geometry": None, "properties": props}]
    features = [
        {
            "type": "Feature",
            "id": district.pk,
            "geometry": body["boundary"],
            "properties": {
                "layer": "district",
                "id": district.pk,
                "code": district.code,
                "name": district.name,
            },
        }
    ]
    for street in Street.objects.filter(district=district).order_by("code"):
        outline = street.boundary
        features.append(
            {
                "type": "Feature",
                "id": street.pk,
                "geometry": json.loads(outline.geojson) if outline is not None else None,
                "properties": {
                    "layer": "street",
                    "id": street.pk,
                    "code": street.code,
                    "name": street.name,
                    "district": district.pk,
                },
            }
        )
    return features


def _district_body(district, full: bool) -> dict:  # type: ignore[no-untyped-def]
    import json

    from gridsvc.community.services import district_boundary

    if not full:
        return {"id": district.pk, "name": district.name}
    boundary = district_boundary(district)
    return {
        "id": district.pk,
        "name": district.name,
        "code": district.code,
        "streets": [
            {"id": s.pk, "code": s.code, "name": s.name}
            for s in Street.objects.filter(district=district).order_by("code")
        ],
        "boundary": json.loads(boundary.geojson) if boundary is not None else None,
    }


class DistrictViewSet(viewsets.ViewSet):
    """区 districts: the district's 创建 office reads its own in full; a street office its
    street's district by name; others none (404)."""

    @extend_schema(responses={200: DistrictSerializer(many=True)})
    def list(self, request):  # type: ignore[no-untyped-def]
        from gridsvc.community.services import readable_districts

        districts, full = readable_districts(request.user)
        return Response([_district_body(d, d.pk in full) for d in districts])

    @extend_schema(
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
        responses={200: DistrictSerializer},
    )
    def retrieve(self, request, pk=None):  # type: ignore[no-untyped-def]
        from rest_framework.exceptions import NotFound

        from gridsvc.community.services import readable_districts

        districts, full = readable_districts(request.user)
        district = districts.filter(pk=pk).first() if str(pk).isdigit() else None
        if district is None:
            raise NotFound()
        return Response(_district_body(district, district.pk in full))

    @extend_schema(responses={200: DistrictFeatureCollectionSerializer})
    @action(detail=False, methods=["get"], url_path="map")
    def map(self, request):  # type: ignore[no-untyped-def]
        """The districts you read as GeoJSON (WGS84), by the rules of the list: the district's
        创建 office gets its outline (its own, else the union of its streets') and its streets'
        outlines (``properties.layer`` ``street``); a street office its district by name only
        (``geometry`` null, no streets); anyone else an empty collection."""
        from gridsvc.community.services import readable_districts

        districts, full = readable_districts(request.user)
        features = [f for d in districts for f in _district_features(d, d.pk in full)]
        return Response({"type": "FeatureCollection", "features": features})


class StreetViewSet(ReadOnlyScoped):
    """街道 streets in your territory."""

    base_queryset = Street.objects.all()
    serializer_class = StreetSerializer
    filterset_fields = ["code"]


class CommunityViewSet(ReadOnlyScoped):
    """社区 communities in your territory."""

    base_queryset = Community.objects.all()
    serializer_class = CommunitySerializer
    filterset_fields = ["street", "code"]


class GridViewSet(ReadOnlyScoped):
    """网格 grids (GeoJSON); ``?bbox=minlon,minlat,maxlon,maxlat``."""

    from django.db.models import Count

    base_queryset = (
        Grid.objects.annotate(
            building_count=Count("buildings", distinct=True),
            household_count=Count("buildings__units__households", distinct=True),
        )
        .select_related("community")
        .order_by("code")
    )
    serializer_class = GridSerializer
    pagination_class = GeoPagination
    filter_backends = [filters.DjangoFilterBackend, InBBoxFilter, Wgs84OnlyCrsFilter]
    bbox_filter_field = "boundary"
    bbox_filter_include_overlapping = True
    filterset_fields = ["community", "code", "parent"]


class CompoundViewSet(ReadOnlyScoped):
    """小区 compounds (GeoJSON)."""

    base_queryset = Compound.objects.all()
    serializer_class = CompoundSerializer
    pagination_class = GeoPagination
    filter_backends = [filters.DjangoFilterBackend, InBBoxFilter, Wgs84OnlyCrsFilter]
    bbox_filter_field = "boundary"
    bbox_filter_include_overlapping = True
    filterset_fields = ["community", "code"]


class BuildingViewSet(ReadOnlyScoped):
    """楼栋 buildings (GeoJSON); ``?orphan=true`` lists buildings in no grid."""

    base_queryset = Building.objects.all()
    serializer_class = BuildingSerializer
    pagination_class = GeoPagination
    filter_backends = [filters.DjangoFilterBackend, InBBoxFilter, Wgs84OnlyCrsFilter]
    bbox_filter_field = "footprint"
    bbox_filter_include_overlapping = True
    filterset_class = BuildingFilter


class PlaceViewSet(ReadOnlyScoped):
    """Places of interest (GeoJSON): religious venues, schools, clinics, service centres."""

    base_queryset = Place.objects.all()
    serializer_class = PlaceSerializer
    pagination_class = GeoPagination
    filter_backends = [filters.DjangoFilterBackend, InBBoxFilter, Wgs84OnlyCrsFilter]
    bbox_filter_field = "point"
    filterset_fields = ["kind", "grid", "community"]


class UnitViewSet(ReadOnlyScoped):
    """单元 units."""

    base_queryset = Unit.objects.all()
    serializer_class = UnitSerializer
    filterset_fields = ["building"]


class HouseholdViewSet(ReadOnlyScoped):
    """户 households (rooms)."""

    from django.db.models import Count

    base_queryset = (
        Household.objects.select_related("unit__building", "head")
        .annotate(resident_count=Count("residents"))
        .order_by("unit_id", "room")
    )
    serializer_class = HouseholdSerializer
    filterset_class = HouseholdFilter


class ResidentViewSet(
    UnmaskAuditMixin,
    ScopedQuerysetMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """居民 residents; sensitive fields masked (``?unmask=1`` with an active grant: audited).
    Create/update within your territory."""

    audit_object_type = "resident"
    audit_fields = RESIDENT_SENSITIVE_FIELDS
    base_queryset = Resident.objects.all()
    serializer_class = ResidentSerializer
    filterset_class = ResidentFilter
    http_method_names = ["get", "post", "patch", "head", "options"]

    def retrieve(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        """One resident, with its ``ETag`` (send it as ``If-Match`` on PATCH)."""
        response = super().retrieve(request, *args, **kwargs)
        response["ETag"] = self.get_object().etag
        return response

    def create(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        response = super().create(request, *args, **kwargs)
        if response.status_code == status.HTTP_201_CREATED and response.data.get("id"):
            response["ETag"] = Resident.objects.get(pk=response.data["id"]).etag
        return response

    @extend_schema(
        request=ResidentSearchSerializer,
        responses={
            200: inline_serializer(
                "ResidentSearchPage",
                {
                    "count": serializers.IntegerField(),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": ResidentSerializer(many=True),
                },
            )
        },
    )
    @action(detail=False, methods=["post"], url_path="search")
    def search(self, request):  # type: ignore[no-untyped-def]
        """身份证号查询: the residents with this ID number, in your territory (the number in
        the body, never in the URL). Answered as the residents list is (a page, masked,
        ``?unmask=1`` with a grant); staff and street only; audited without the number."""
        body = ResidentSearchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        queryset = self.filter_queryset(self.get_queryset())
        queryset = search_by_id_number(request, queryset, body.validated_data["id_number"])
        page = self.paginate_queryset(queryset)
        rows = self.get_serializer(page if page is not None else queryset, many=True).data
        return self.get_paginated_response(rows) if page is not None else Response(rows)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "If-Match",
                str,
                OpenApiParameter.HEADER,
                description="the resident's ETag: 412 with the server's copy if it changed "
                "meanwhile (the phone protocol sends it; without it the PATCH is applied)",
            )
        ],
        responses={200: ResidentSerializer, 412: StaleResidentSerializer},
    )
    def partial_update(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Change the fields sent. With ``If-Match: <ETag>`` only if nobody changed the
        resident since (the row is locked while it is compared and saved), else 412 with the
        server's copy, masked as for any answer to the caller, and the new ``ETag``."""
        wanted = (request.headers.get("If-Match") or "").strip().removeprefix("W/")
        with transaction.atomic():
            found = self.get_object()
            current = Resident.objects.select_for_update().get(pk=found.pk)
            if wanted and wanted != "*" and wanted != current.etag:
                message = "the resident has changed since you read it; fetch it and try again"
                body = self.get_serializer(current).data
                grant = getattr(request, "_gridsvc_grant", None)
                if grant is not None:  # an unmasked copy is a read like any other: audited
                    record_unmasked_reads(
                        request.user,
                        self.audit_object_type,
                        [current.pk],
                        self.audit_fields,
                        grant,
                        ip=request.META.get("REMOTE_ADDR"),
                    )
                return Response(
                    {
                        "If-Match": [message],
                        "detail": message,
                        "code": "stale_version",
                        "current": body,
                    },
                    status=status.HTTP_412_PRECONDITION_FAILED,
                    headers={"ETag": current.etag},
                )
            response = super().partial_update(request, *args, **kwargs)
        if response.status_code == status.HTTP_200_OK:
            response["ETag"] = Resident.objects.get(pk=found.pk).etag
        return response

    def perform_create(self, serializer):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            self._refuse_duplicate(serializer)
            serializer.save()

    def perform_update(self, serializer):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            self._refuse_duplicate(serializer)
            serializer.save()

    def _refuse_duplicate(self, serializer) -> None:  # type: ignore[no-untyped-def]
        """409 naming ``id_number`` when another resident of the same street has the number
        (nothing about that resident is said: not who, not where)."""
        inst = serializer.instance
        data = serializer.validated_data
        number = data.get("id_number", getattr(inst, "id_number", "") or "")
        if not number or ("id_number" not in data and "household" not in data):
            return
        household = data.get("household", getattr(inst, "household", None))
        taken = Resident.id_number_taken(
            number,
            household.pk if household is not None else None,
            exclude_pk=getattr(inst, "pk", None),
            street_ids=request_scope(self.request).street_ids,
        )
        if taken:
            raise IdNumberTaken()
