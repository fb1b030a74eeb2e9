from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "gridsvc.visits"
    label = "visits"
    verbose_name = "Field visits 走访"

    def ready(self) -> None:
        from . import signals

        signals.connect()
        from gridsvc.chain.scope import HOUSEHOLD_PATHS

        from .models import Visit, VisitTask

        HOUSEHOLD_PATHS[VisitTask] = "household__"
        HOUSEHOLD_PATHS[Visit] = "household__"
