"""When a change to territory commits (not cases: packages hold none), the worker rebuilds the
offline packages that went stale (the triggers already logged which grids changed and dropped
the cached tiles under the change). The refresh job is queued in the change's own transaction,
at its first territory save: the job row commits with the data or not at all. (Queued in an
on-commit hook, a database that went away just after the commit lost the refresh for good;
found by scripts/cluster_faults.py.) One job per transaction at most; nothing if no package
exists. Bulk changes send no signals: the periodic ``layers.sweep`` picks them up."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

_FLAG = "_gridsvc_layers_refresh_pending"


def _queued_in_this_transaction() -> bool:
    """True when this transaction already queued the refresh (or found no package).

    The per-connection flag holds the on-commit hook registered with the queueing; Django drops
    the hooks of a transaction or savepoint that rolls back — with the job row queued in it —
    so the flag counts only while its hook is still pending (no stale flag after a rollback)."""
    hook = getattr(connection, _FLAG, None)
    return hook is not None and any(entry[1] is hook for entry in connection.run_on_commit)


def _flush() -> None:
    """Queue ``layers.refresh_stale`` in the current transaction, once per transaction."""
    if _queued_in_this_transaction():
        return
    from .jobs import enqueue_refresh
    from .models import OfflinePackage

    if OfflinePackage.objects.exists():
        enqueue_refresh()  # in a savepoint: one already waiting (queueing lock) is no error

    def committed() -> None:
        setattr(connection, _FLAG, None)

    setattr(connection, _FLAG, committed)
    transaction.on_commit(committed)  # outside a transaction: runs (and clears) at once


def data_changed(sender, instance=None, raw: bool = False, **kwargs) -> None:  # type: ignore[no-untyped-def]
    if raw:
        return
    _flush()


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
