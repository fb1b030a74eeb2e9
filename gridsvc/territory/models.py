"""Territory: the administrative line and the property line, mapped in PostGIS.

Administrative line 行政线: Street 街道 (9-digit code) → Community 社区 (12-digit 统计用区划代码)
→ Grid 网格 (15 digits: community + 3-digit sequence) → optional micro-grid 片格.
Property line 物业线: Compound 小区 → Building 楼栋 → Unit 单元 → Household 户 → Resident 居民.

All geometries are stored in WGS84 (SRID 4326) with GiST indexes. A building's grid and
compound are derived by PostGIS (see :mod:`gridsvc.territory.services`), never typed in.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.gis.db import models
from django.contrib.gis.geos import GEOSGeometry, Point
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from gridsvc.crypto import EncryptedTextField, keyed_hash

from .codes import (
    ETHNICITY_CHOICES,
    HAN,
    digits_validator,
    id_birth_date,
    id_contradictions,
    id_sex,
    mask_id_number,
    mask_phone,
    validate_id_number,
)

SRID = 4326


class District(models.Model):
    """区/县 (county-level district, GB/T 2260 6-digit code) above the streets: its 创建 office
    reads its streets' reports side by side (issue 20 item 9). Optional: a street without one
    reports to nobody above it."""

    code = models.CharField(max_length=6, unique=True, validators=[digits_validator(6)])
    name = models.CharField(max_length=64)
    boundary = models.MultiPolygonField(srid=SRID, null=True, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Street(models.Model):
    """街道 (sub-district); its office (街道办) runs the dispatch desk."""

    code = models.CharField(max_length=9, unique=True, validators=[digits_validator(9)])
    name = models.CharField(max_length=64)
    boundary = models.MultiPolygonField(srid=SRID, null=True, blank=True)
    district = models.ForeignKey(
        District, on_delete=models.PROTECT, null=True, blank=True, related_name="streets"
    )

    class Meta:
        ordering = ["code"]

    def clean(self) -> None:
        if self.district_id and self.code and not self.code.startswith(self.district.code):
            raise ValidationError({"code": "street code must start with its district's code"})

    def __str__(self) -> str:
        return self.name


class Community(models.Model):
    """社区 (residents' community); 12-digit code starting with its street's 9 digits."""

    street = models.ForeignKey(Street, on_delete=models.PROTECT, related_name="communities")
    code = models.CharField(max_length=12, unique=True, validators=[digits_validator(12)])
    name = models.CharField(max_length=64)
    boundary = models.MultiPolygonField(srid=SRID, null=True, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "communities"

    def clean(self) -> None:
        if self.street_id and self.code and not self.code.startswith(self.street.code):
            raise ValidationError({"code": "community code must start with its street's code"})

    def __str__(self) -> str:
        return self.name


class GridQuerySet(models.QuerySet):
    """Grids found by place, done by PostGIS (MapIt's ``AreaManager.by_location`` pattern)."""

    def covering(self, point: Point) -> Grid | None:
        """The top-level grid covering ``point``; on a shared edge the lowest code wins."""
        return (
            self.filter(parent__isnull=True, boundary__covers=point)
            .select_related("community__street")
            .order_by("code")
            .first()
        )


class Grid(models.Model):
    """网格: a polygon of the community with one responsible body.

    Codes are the community's 12 digits + a 3-digit sequence, numbered west→east,
    north→south. A micro-grid (片格) has ``parent`` set. If ``responsible_body`` is blank
    the community itself covers the grid (属地兜底).
    """

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="grids")
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="micro_grids"
    )
    code = models.CharField(max_length=18, unique=True)
    name = models.CharField(max_length=64)
    boundary = models.MultiPolygonField(srid=SRID)
    responsible_body = models.CharField(max_length=128, blank=True)

    objects = GridQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def clean(self) -> None:
        errors = {}
        if self.community_id:
            prefix = self.community.code
            base_len = 15 if self.parent_id is None else 18
            if not (
                self.code.isdigit() and len(self.code) == base_len and self.code.startswith(prefix)
            ):
                errors["code"] = f"grid code must be the community code {prefix} + 3 digits" + (
                    " (+3 for a micro-grid)" if self.parent_id else ""
                )
        if self.boundary is not None and not self.boundary.valid:
            errors["boundary"] = f"invalid geometry: {self.boundary.valid_reason}"
        if errors:
            raise ValidationError(errors)

    @property
    def responsible_body_display(self) -> str:
        return self.responsible_body or f"{self.community.name}(属地兜底)"

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Compound(models.Model):
    """小区 (residential compound). May straddle grids; its buildings may not."""

    community = models.ForeignKey(Community, on_delete=models.PROTECT, related_name="compounds")
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    boundary = models.MultiPolygonField(srid=SRID)
    property_company = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


# building → grid and building → compound from the footprint, in one UPDATE: the largest share
# of the footprint wins, compared to 1e-6 so that float noise cannot decide; ties go to the
# lowest code, so a building on a shared edge always lands in the same grid
_DERIVE_SQL = """
UPDATE territory_building b SET
  grid_id = (
    SELECT g.id FROM territory_grid g
    WHERE g.parent_id IS NULL AND g.boundary && b.footprint
      AND ST_Intersects(g.boundary, b.footprint)
    ORDER BY round((ST_Area(ST_Intersection(g.boundary, b.footprint))
                    / NULLIF(ST_Area(b.footprint), 0))::numeric, 6) DESC NULLS LAST, g.code
    LIMIT 1),
  compound_id = (
    SELECT c.id FROM territory_compound c
    WHERE c.boundary && b.footprint AND ST_Intersects(c.boundary, b.footprint)
    ORDER BY round((ST_Area(ST_Intersection(c.boundary, b.footprint))
                    / NULLIF(ST_Area(b.footprint), 0))::numeric, 6) DESC NULLS LAST, c.code
    LIMIT 1)
"""


class BuildingManager(models.Manager):
    """The grid and compound of buildings, derived by PostGIS from their footprints."""

    def derive_containers(self, building_ids: Iterable[int] | None = None) -> int:
        """Recompute grid and compound of the given buildings (all when None); returns rows."""
        with connection.cursor() as cur:
            if building_ids is None:
                cur.execute(_DERIVE_SQL)
            else:
                ids = list(building_ids)
                if not ids:
                    return 0
                cur.execute(_DERIVE_SQL + " WHERE b.id = ANY(%s)", [ids])
            return cur.rowcount

    def rederive_near(self, geometry: GEOSGeometry) -> int:
        """After a grid or compound boundary changed: recompute buildings touching
        ``geometry``."""
        with connection.cursor() as cur:
            cur.execute(
                _DERIVE_SQL + " WHERE b.footprint && ST_GeomFromEWKB(%s)",
                [bytes(geometry.ewkb)],
            )
            return cur.rowcount


class Building(models.Model):
    """楼栋: a footprint and a representative point (on the footprint).

    ``grid`` and ``compound`` are derived by PostGIS from the footprint: the grid holding the
    largest share of it (ties broken by the lowest grid code). A building outside every grid
    keeps ``grid`` empty and is reported by ``manage.py check_territory``.
    """

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    address = models.CharField(max_length=128, blank=True)
    footprint = models.MultiPolygonField(srid=SRID)
    point = models.PointField(srid=SRID, null=True, blank=True)
    floors = models.PositiveSmallIntegerField(default=6)
    grid = models.ForeignKey(
        Grid, on_delete=models.SET_NULL, null=True, blank=True, related_name="buildings"
    )
    compound = models.ForeignKey(
        Compound, on_delete=models.SET_NULL, null=True, blank=True, related_name="buildings"
    )

    objects = BuildingManager()

    class Meta:
        ordering = ["code"]

    def save(self, *args, **kwargs) -> None:
        if self.footprint is not None and self.point is None:
            self.point = self.footprint.point_on_surface
        super().save(*args, **kwargs)
        Building.objects.derive_containers([self.pk])
        self.refresh_from_db(fields=["grid", "compound"])

    def __str__(self) -> str:
        return self.name


class Unit(models.Model):
    """单元 (stairwell/entrance) of a building."""

    building = models.ForeignKey(Building, on_delete=models.CASCADE, related_name="units")
    number = models.CharField(max_length=16)

    class Meta:
        ordering = ["building_id", "number"]
        constraints = [models.UniqueConstraint(fields=["building", "number"], name="unit_unique")]

    def __str__(self) -> str:
        return f"{self.building.name} {self.number}单元"


class Household(models.Model):
    """户: a room (以房管人 — people are managed through their house)."""

    class Tenure(models.TextChoices):
        OWNED = "owned", "自有"
        RENTED = "rented", "租住"
        LOW_RENT = "low_rent", "廉租房"
        PUBLIC_RENTAL = "public_rental", "公租房"

    unit = models.ForeignKey(Unit, on_delete=models.CASCADE, related_name="households")
    room = models.CharField(max_length=16)
    floor = models.SmallIntegerField(default=1)
    tenure = models.CharField(max_length=16, choices=Tenure.choices, default=Tenure.OWNED)
    head = models.ForeignKey(
        "Resident",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="户主/家长 (household head)",
    )

    class Meta:
        ordering = ["unit_id", "room"]
        constraints = [models.UniqueConstraint(fields=["unit", "room"], name="household_unique")]

    def __str__(self) -> str:
        return f"{self.unit} {self.room}"


class MaskField(models.TextField):
    """The masked form of an encrypted column (``source``), stored beside it so that a
    masked output (the phone's change feed) need not decrypt: what every tier that reads the
    resident sees of it (``620103********0015``, ``*******5596``), never more. Filled from the
    clear value on every write: ``save()`` and ``bulk_create`` (:meth:`pre_save`), ``update``
    and ``bulk_update`` (:class:`ResidentQuerySet`). NULL: not known (a row written around
    the model, e.g. by COPY): a reader decrypts and masks instead. The database keeps a
    stored mask from going stale: an UPDATE that changes the encrypted column without naming
    the mask column in the same statement (raw SQL around the model) sets the mask to NULL
    (trigger ``resident_mask_z_guard``, migration ``0005_resident_mask_guard``)."""

    def __init__(self, *args, source: str = "", masker=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.source = source
        self.masker = masker
        kwargs.setdefault("null", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):  # type: ignore[no-untyped-def]
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        kwargs.pop("masker", None)  # code, not schema
        if kwargs.get("null") is True:
            kwargs.pop("null")
        if kwargs.get("editable") is False:
            kwargs.pop("editable")
        return name, path, args, kwargs

    def mask_of(self, clear: str | None) -> str | None:
        """The stored mask of ``clear`` (a clear value of the source column)."""
        return self.masker(clear) if self.masker is not None else None

    def pre_save(self, model_instance, add: bool):  # type: ignore[no-untyped-def]
        value = self.mask_of(getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value


class ResidentQuerySet(models.QuerySet):
    """Residents; ``update`` and ``bulk_update`` of an encrypted column write its stored mask
    (:class:`MaskField`) too."""

    def _masks(self) -> dict[str, MaskField]:
        return {f.source: f for f in self.model._meta.concrete_fields if isinstance(f, MaskField)}

    def update(self, **kwargs):  # type: ignore[no-untyped-def]
        for source, field in self._masks().items():
            if source in kwargs and field.name not in kwargs:
                value = kwargs[source]
                # an expression (F(), Value …): the mask is not known here — NULL, so that a
                # reader decrypts the stored value rather than show a stale mask
                known = value is None or isinstance(value, str)
                kwargs[field.name] = field.mask_of(value) if known else None
        return super().update(**kwargs)

    update.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(self, objs, fields, batch_size=None):  # type: ignore[no-untyped-def]
        fields = list(fields)
        objs = list(objs)
        for source, field in self._masks().items():
            if source in fields and field.name not in fields:
                fields.append(field.name)
                for obj in objs:
                    setattr(obj, field.attname, field.mask_of(getattr(obj, source)))
        return super().bulk_update(objs, fields, batch_size=batch_size)

    bulk_update.alters_data = True  # type: ignore[attr-defined]


class Resident(models.Model):
    """居民. Linked to a household room, or recorded as having no house with a reason.

    Sensitive personal information (ID number, phone) is encrypted at rest; ethnicity and
    sensitive group tags are masked in every response unless unmasked with a reason.
    """

    class Residency(models.TextChoices):
        REGISTERED = "registered", "户籍人口"
        SEPARATED = "separated", "人户分离"
        FLOATING = "floating", "流动人口"
        OVERSEAS = "overseas", "境外人员"

    class Gender(models.TextChoices):
        MALE = "M", "男"
        FEMALE = "F", "女"

    class Tag(models.TextChoices):
        LOW_INCOME = "low_income", "低保"
        LOW_RENT_HOUSING = "low_rent_housing", "廉租房"
        HARDSHIP = "hardship", "困难家庭"
        DISABLED = "disabled", "残疾人"
        ELDERLY_ALONE = "elderly_alone", "独居老人"
        UNEMPLOYED = "unemployed", "失业/下岗"
        COMMUNITY_CORRECTION = "community_correction", "社区矫正"
        HELP_EDUCATION = "help_education", "两劳帮教"
        PARTY_MEMBER = "party_member", "党员"
        VOLUNTEER = "volunteer", "志愿者"
        RESPECTED_ELDER = "respected_elder", "德高望重人士"
        RELIGIOUS_FIGURE = "religious_figure", "宗教人士"

    # Which tags are sensitive personal information (correction records, disability, income
    # and assistance, religion) is the visibility matrix's: gridsvc.chain.visibility.SENSITIVE_TAGS.

    household = models.ForeignKey(
        Household, on_delete=models.SET_NULL, null=True, blank=True, related_name="residents"
    )
    no_house_reason = models.CharField(max_length=128, blank=True)
    name = models.CharField(max_length=64)
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    id_number = EncryptedTextField(blank=True)
    id_number_hash = models.CharField(max_length=64, blank=True, db_index=True)
    phone = EncryptedTextField(blank=True)
    # the masks every tier sees, beside the encrypted values (the change feed reads them
    # without decrypting; MaskField)
    id_number_mask = MaskField(source="id_number", masker=mask_id_number)
    phone_mask = MaskField(source="phone", masker=mask_phone)
    ethnicity = models.CharField(max_length=2, choices=ETHNICITY_CHOICES, default=HAN)
    residency = models.CharField(
        max_length=16, choices=Residency.choices, default=Residency.REGISTERED
    )
    origin_place = models.CharField(max_length=128, blank=True, help_text="流动人口户籍地")
    relation_to_head = models.CharField(max_length=16, blank=True)
    tags = ArrayField(
        models.CharField(max_length=32, choices=Tag.choices), default=list, blank=True
    )

    class Meta:
        ordering = ["id"]
        indexes = [GinIndex(fields=["tags"], name="resident_tags_gin")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(household__isnull=False) | ~models.Q(no_house_reason=""),
                name="resident_house_or_reason",
            )
        ]

    objects = ResidentQuerySet.as_manager()

    def clean(self) -> None:
        errors: dict = {}
        if self.id_number:
            try:
                self.id_number = validate_id_number(self.id_number)
            except ValidationError as exc:
                errors["id_number"] = exc.messages
            else:
                errors.update(id_contradictions(self.id_number, self.birth_date, self.gender))
        if self.household_id is None and not self.no_house_reason:
            errors["no_house_reason"] = "a resident without a household needs a reason (无房原因)"
        unknown = set(self.tags) - set(self.Tag.values)
        if unknown:
            errors["tags"] = f"unknown tags: {sorted(unknown)}"
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs) -> None:
        """Stores the keyed hash of the ID number; birth date and sex left empty are taken
        from the number (出生日期码, 顺序码)."""
        self.id_number_hash = keyed_hash(self.id_number) if self.id_number else ""
        if self.id_number and len(self.id_number) == 18:
            try:
                if self.birth_date is None:
                    self.birth_date = id_birth_date(self.id_number)
                if not self.gender:
                    self.gender = id_sex(self.id_number)
            except ValueError:  # a number stored before validation: leave the fields as given
                pass
        fields = kwargs.get("update_fields")
        if fields is not None:  # a saved encrypted column writes its mask too (MaskField)
            fields = set(fields)
            kwargs["update_fields"] = fields | {
                f.name
                for f in self._meta.concrete_fields
                if isinstance(f, MaskField) and f.source in fields
            }
        super().save(*args, **kwargs)

    @property
    def etag(self) -> str:
        """The version of the stored row, for optimistic concurrency (If-Match → 412).

        A keyed hash (HMAC with the secret key) of every stored column: any change by any
        path (API, admin, import, status history) gives another tag, and the tag tells
        nothing about the masked values it covers. Compute it on a row read from the
        database (``refresh_from_db``), not on an unsaved copy."""
        import json

        from django.utils.crypto import salted_hmac

        values = [
            str(f.value_from_object(self))
            for f in self._meta.concrete_fields
            if not f.primary_key and not isinstance(f, MaskField)  # masks: derived
        ]
        digest = salted_hmac("gridsvc.resident.etag", json.dumps(values)).hexdigest()[:24]
        return f'"resident-{self.pk}-{digest}"'

    @staticmethod
    def street_of_household(household_id: int | None) -> int | None:
        """The street (街道) a household lies in: unit → building → grid → community → street;
        None without a household or for a building in no grid."""
        if household_id is None:
            return None
        return (
            Household.objects.filter(pk=household_id)
            .values_list("unit__building__grid__community__street", flat=True)
            .first()
        )

    @classmethod
    def id_number_taken(
        cls,
        id_number: str,
        household_id: int | None,
        *,
        exclude_pk: int | None = None,
        street_ids: Iterable[int] = (),
    ) -> bool:
        """Whether another resident of the same street already has this ID number (by the
        keyed hash): one person, one record per street (docs/data.md, "ID numbers").

        The street is the household's; a resident with no house (or in a building in no
        grid) belongs to no street: it counts as a duplicate in every street, and is itself
        compared with the residents of ``street_ids`` (the street offices that record such
        residents) and with the other residents who have no street. Call inside the transaction that saves: an advisory lock on the
        number serialises concurrent checks, so two requests cannot both pass."""
        digest = keyed_hash(id_number)
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [int(digest[:15], 16)])
        street = cls.street_of_household(household_id)
        same = cls.objects.filter(id_number_hash=digest)
        if exclude_pk is not None:
            same = same.exclude(pk=exclude_pk)
        street_path = "household__unit__building__grid__community__street"
        no_street = models.Q(household__isnull=True) | models.Q(
            household__unit__building__grid__isnull=True
        )
        if street is not None:
            return same.filter(no_street | models.Q(**{street_path: street})).exists()
        return same.filter(
            no_street | models.Q(**{f"{street_path}__in": list(street_ids)})
        ).exists()

    @property
    def is_minority(self) -> bool:
        return self.ethnicity != HAN

    def __str__(self) -> str:
        return self.name


class Place(models.Model):
    """Places of interest (a point layer): religious venues, schools, clinics, centres."""

    class Kind(models.TextChoices):
        MOSQUE = "mosque", "清真寺"
        RELIGIOUS_VENUE = "religious_venue", "宗教活动场所"
        SCHOOL = "school", "学校"
        CLINIC = "clinic", "卫生服务站"
        SERVICE_CENTRE = "service_centre", "服务中心"
        OTHER = "other", "其他"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    name = models.CharField(max_length=128)
    address = models.CharField(max_length=128, blank=True)
    point = models.PointField(srid=SRID)
    community = models.ForeignKey(
        Community, on_delete=models.PROTECT, null=True, blank=True, related_name="places"
    )
    grid = models.ForeignKey(
        Grid, on_delete=models.SET_NULL, null=True, blank=True, related_name="places"
    )

    class Meta:
        ordering = ["id"]

    @property
    def is_religious(self) -> bool:
        return self.kind in {self.Kind.MOSQUE, self.Kind.RELIGIOUS_VENUE}

    def save(self, *args, **kwargs) -> None:
        if self.point is not None and self.grid_id is None:
            self.grid = Grid.objects.covering(self.point)
        if self.grid_id and not self.community_id:
            self.community_id = self.grid.community_id
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.name


class ResidentStatus(models.Model):
    """One period a resident held a tag (低保, 社区矫正, 残疾 …): the status history
    (身份/人群状态变更记录). Recorded and read by :mod:`gridsvc.territory.history`, whose
    save hook is connected when the app is ready."""

    resident = models.ForeignKey(Resident, on_delete=models.CASCADE, related_name="status_history")
    tag = models.CharField(max_length=32, choices=Resident.Tag.choices)
    valid_from = models.DateField(
        null=True, blank=True, help_text="first day it held; empty: before the history was kept"
    )
    valid_to = models.DateField(
        null=True, blank=True, help_text="first day it no longer held; empty: still holds"
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="who recorded the start",
    )
    reason = models.CharField(max_length=200, blank=True, help_text="why it started")
    recorded_at = models.DateTimeField(default=timezone.now)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="who recorded the end",
    )
    end_reason = models.CharField(max_length=200, blank=True, help_text="why it ended")
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["resident_id", "tag", "valid_from", "id"]
        indexes = [models.Index(fields=["resident", "tag"], name="resident_status_tag")]
        constraints = [
            models.UniqueConstraint(
                fields=["resident", "tag"],
                condition=Q(valid_to__isnull=True),
                name="resident_status_one_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.resident_id} {self.tag} {self.valid_from or '…'}–{self.valid_to or ''}"
