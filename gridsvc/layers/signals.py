"""After a commit that changed territory (not cases: packages hold none), ask the worker to rebuild the
offline packages that went stale (the triggers already logged which grids changed and dropped
the cached tiles under the change). One job per commit at most; nothing if no package exists.
Bulk changes send no signals: the periodic ``layers.sweep`` picks them up."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

_FLAG = "_gridsvc_layers_refresh_pending"


def _flush() -> None:
    if not getattr(connection, _FLAG, False):
        return
    setattr(connection, _FLAG, False)
    from .jobs import enqueue_refresh
    from .models import OfflinePackage

    if OfflinePackage.objects.exists():
        enqueue_refresh()


def data_changed(sender, instance=None, raw: bool = False, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if raw:
        return
    setattr(connection, _FLAG, True)
    transaction.on_commit(_flush)


def category_changed(sender, instance=None, raw: bool = False, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """Case tiles carry the category code: a renamed or recoded category drops them (the
    triggers only see changes to the cases themselves)."""
    if raw:
        return
    from .models import TileCache

    TileCache.objects.filter(layer__in=["cases", "heatmap"]).delete()


def connect() -> None:
    from gridsvc.cases.models import Category
    from gridsvc.territory.models import (
        Building,
        Compound,
        Grid,
        Household,
        Place,
        Resident,
        Unit,
    )

    # cases are not in offline packages (the change feed brings them): a case change drops
    # the case tiles under it (triggers) but rebuilds no package
    for model in (Grid, Compound, Building, Unit, Household, Resident, Place):
        uid = f"layers_{model.__name__.lower()}"
        post_save.connect(data_changed, sender=model, dispatch_uid=f"{uid}_saved")
        post_delete.connect(data_changed, sender=model, dispatch_uid=f"{uid}_deleted")
    post_save.connect(category_changed, sender=Category, dispatch_uid="layers_category_saved")
    post_delete.connect(category_changed, sender=Category, dispatch_uid="layers_category_deleted")
