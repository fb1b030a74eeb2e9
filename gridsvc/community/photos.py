"""Photos of the community's activities (活动照片, issue 20 item 3) and of venue visits
(宗教场所共同走访), kept like visit photos — one path for both (:func:`check_photo`,
:func:`store_photo`).

- **Checked by content**: JPEG or PNG by their magic bytes, at most 5 MB
  (:func:`gridsvc.visits.ingest.parse_photo`, the visits' rule); the client's file name and
  ``Content-Type`` are ignored, the stored name is the server's.
- **Once per record**: a photo whose bytes (``sha256``) the activity (the venue visit)
  already has is that photo (a phone's retry after a lost answer does not double it).
- **EXIF as visits keep it**: the GPS point and time are read into ``exif_point`` /
  ``exif_time`` and the file is stored as sent.
- **Who**: staff who may read the activity or the venue visit (the work scope,
  :func:`rules.work_scope`) add photos and read them; neighbours reach neither the records nor
  their photos.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from .models import Activity, ActivityPhoto, StoredPhoto, VenueVisit, VenueVisitPhoto
from .rules import CommunityError, require_staff, work_scope

if TYPE_CHECKING:
    from gridsvc.visits.ingest import PhotoInput

#: photos one activity may carry (a visit carries 10)
MAX_PHOTOS_PER_ACTIVITY = 20
#: photos one venue visit may carry: a household visit's (gridsvc.visits.ingest.MAX_PHOTOS)
MAX_PHOTOS_PER_VENUE_VISIT = 10


def readable_activity(member: Any, activity_id: Any) -> Activity | None:
    """The activity ``activity_id`` if ``member`` may read it, else None."""
    return _readable(Activity, member, activity_id)


def readable_venue_visit(member: Any, visit_id: Any) -> VenueVisit | None:
    """The venue visit ``visit_id`` if ``member`` may read it, else None."""
    return _readable(VenueVisit, member, visit_id)


def _readable(model: Any, member: Any, pk: Any) -> Any:
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return work_scope(member).filter(model.objects.all()).filter(pk=pk).first()


def check_photo(data: bytes, field: str = "photo") -> PhotoInput:
    """The visits' rule (:func:`gridsvc.visits.ingest.parse_photo`): a JPEG or PNG by its
    magic bytes, not empty, at most 5 MB, its EXIF GPS and time read; else refused naming
    ``field``."""
    from gridsvc.visits.ingest import ItemError, parse_photo

    try:
        return parse_photo(data, field)
    except ItemError as exc:
        message = next(iter(exc.errors.values()), "not a photo")
        raise CommunityError(str(message), field) from None


def store_photo(
    photo_model: type[StoredPhoto],
    owner_field: str,
    owner: Any,
    member: Any,
    p: PhotoInput,
    *,
    limit: int,
    field: str = "photo",
) -> tuple[Any, bool]:
    """Keep a checked photo (:func:`check_photo`) on ``owner`` (its ``owner_field``): the
    stored photo and whether it was stored now — false when ``owner`` has these bytes already
    (``sha256``), also when a concurrent retry stored them meanwhile. More than ``limit``
    photos on one record is refused naming ``field``."""
    from django.contrib.gis.geos import Point

    mine = {owner_field: owner}
    existing = photo_model.objects.filter(**mine, sha256=p.sha256).first()
    if existing is not None:
        return existing, False
    if photo_model.objects.filter(**mine).count() >= limit:
        raise CommunityError(f"at most {limit} photos per {owner_field}", field)
    photo = photo_model(
        **mine,
        content_type=p.content_type,
        size=len(p.data),
        sha256=p.sha256,
        exif_point=Point(*p.exif_point, srid=4326) if p.exif_point else None,
        exif_time=p.exif_time,
        uploaded_by=member,
    )
    ext = "jpg" if p.content_type == "image/jpeg" else "png"
    prefix = photo_model._meta.model_name.removesuffix("photo")  # activity, venuevisit
    try:
        with transaction.atomic():
            photo.image.save(  # type: ignore[attr-defined]
                f"{prefix}-{owner.pk}-{p.sha256[:12]}.{ext}", ContentFile(p.data), save=True
            )
    except IntegrityError:  # the same photo stored meanwhile by a concurrent retry
        photo.image.delete(save=False)  # type: ignore[attr-defined]
        return photo_model.objects.get(**mine, sha256=p.sha256), False
    return photo, True


def add_activity_photo(
    member: Any, activity: Activity, data: bytes, field: str = "photo"
) -> tuple[ActivityPhoto, bool]:
    """Attach a photo to ``activity`` (one ``member`` may read: the caller checks). Returns
    the photo and whether it was stored now (false: the activity has these bytes already).
    A file that is not a JPEG/PNG, is empty or is larger than 5 MB is refused naming
    ``field``."""
    require_staff(member)
    p = check_photo(data, field)
    return store_photo(
        ActivityPhoto, "activity", activity, member, p, limit=MAX_PHOTOS_PER_ACTIVITY, field=field
    )


def add_venue_visit_photo(
    member: Any, visit: VenueVisit, data: bytes, field: str = "photo"
) -> tuple[VenueVisitPhoto, bool]:
    """Attach a photo to a venue visit ``member`` may read (the caller checks), as
    :func:`add_activity_photo` does to an activity."""
    require_staff(member)
    p = check_photo(data, field)
    return store_venue_visit_photos(member, visit, [p], field)[0]


def store_venue_visit_photos(
    member: Any, visit: VenueVisit, photos: list[PhotoInput], field: str = "photos"
) -> list[tuple[VenueVisitPhoto, bool]]:
    """Keep checked photos on ``visit`` (those sent with it: the batch item's or the POST's
    base64 ``photos``, checked by :class:`api.visits.serializers.PhotosField`)."""
    return [
        store_photo(
            VenueVisitPhoto,
            "visit",
            visit,
            member,
            p,
            limit=MAX_PHOTOS_PER_VENUE_VISIT,
            field=field,
        )
        for p in photos
    ]
