"""Photos of the community's activities (活动照片, issue 20 item 3), kept like visit photos.

- **Checked by content**: JPEG or PNG by their magic bytes, at most 5 MB
  (:func:`gridsvc.visits.ingest.parse_photo`, the visits' rule); the client's file name and
  ``Content-Type`` are ignored, the stored name is the server's.
- **Once per activity**: a photo whose bytes (``sha256``) the activity already has is that
  photo (a phone's retry after a lost answer does not double it).
- **EXIF as visits keep it**: the GPS point and time are read into ``exif_point`` /
  ``exif_time`` and the file is stored as sent.
- **Who**: staff who may read the activity (the work scope, :func:`services.visible`) add
  photos and read them; neighbours reach neither the activity nor its photos.
"""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from .models import Activity, ActivityPhoto
from .services import CommunityError, _require_staff, visible

#: photos one activity may carry (a visit carries 10)
MAX_PHOTOS_PER_ACTIVITY = 20


def readable_activity(member: Any, activity_id: Any) -> Activity | None:
    """The activity ``activity_id`` if ``member`` may read it, else None."""
    try:
        pk = int(activity_id)
    except (TypeError, ValueError):
        return None
    return visible(Activity, member).filter(pk=pk).first()


def add_activity_photo(
    member: Any, activity: Activity, data: bytes, field: str = "photo"
) -> tuple[ActivityPhoto, bool]:
    """Attach a photo to ``activity`` (one ``member`` may read: the caller checks). Returns
    the photo and whether it was stored now (false: the activity has these bytes already).
    A file that is not a JPEG/PNG, is empty or is larger than 5 MB is refused naming
    ``field``."""
    from django.contrib.gis.geos import Point

    from gridsvc.visits.ingest import ItemError, parse_photo

    _require_staff(member)
    try:
        p = parse_photo(data, field)
    except ItemError as exc:
        message = next(iter(exc.errors.values()), "not a photo")
        raise CommunityError(str(message), field) from None
    existing = ActivityPhoto.objects.filter(activity=activity, sha256=p.sha256).first()
    if existing is not None:
        return existing, False
    if ActivityPhoto.objects.filter(activity=activity).count() >= MAX_PHOTOS_PER_ACTIVITY:
        raise CommunityError(f"at most {MAX_PHOTOS_PER_ACTIVITY} photos per activity", field)
    photo = ActivityPhoto(
        activity=activity,
        content_type=p.content_type,
        size=len(p.data),
        sha256=p.sha256,
        exif_point=Point(*p.exif_point, srid=4326) if p.exif_point else None,
        exif_time=p.exif_time,
        uploaded_by=member,
    )
    ext = "jpg" if p.content_type == "image/jpeg" else "png"
    try:
        with transaction.atomic():
            photo.image.save(
                f"activity-{activity.pk}-{p.sha256[:12]}.{ext}", ContentFile(p.data), save=True
            )
    except IntegrityError:  # the same photo stored meanwhile by a concurrent retry
        photo.image.delete(save=False)
        return ActivityPhoto.objects.get(activity=activity, sha256=p.sha256), False
    return photo, True
