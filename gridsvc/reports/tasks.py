"""The reports app's worker tasks: the background imports of :mod:`gridsvc.dataio.tasks`
(procrastinate's autodiscovery imports this module in the worker)."""

from gridsvc.dataio.tasks import import_roster_job

__all__ = ["import_roster_job"]
