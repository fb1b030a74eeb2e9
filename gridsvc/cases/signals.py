"""Deadlines are stored as absolute times: when the calendar, the office hours or a time limit
changes, the worker recomputes the deadlines of the open cases it touches."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from gridsvc.supervision.models import CalendarDay, CalendarYear, WorkingHours

from . import jobs
from .models import TimeLimit


def _enqueue(street_id: int | None = None, category_ids: list[int] | None = None) -> None:
    jobs.recompute_later(street_id=street_id, category_ids=category_ids)


@receiver([post_save, post_delete], sender=CalendarDay)
@receiver([post_save, post_delete], sender=CalendarYear)
@receiver([post_save, post_delete], sender=WorkingHours)
def calendar_changed(sender: type[Model], instance: Any, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    _enqueue(street_id=instance.street_id)


@receiver([post_save, post_delete], sender=TimeLimit)
def limit_changed(sender: type[Model], instance: Any, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    _enqueue(category_ids=[instance.category_id])
