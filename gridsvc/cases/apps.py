from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "gridsvc.cases"
    label = "cases"
    verbose_name = "案件 cases"

    def ready(self) -> None:
        from gridsvc.chain.scope import LOCATED_MODELS

        from . import signals, tasks  # noqa: F401 - register the worker's tasks and signals
        from .models import Case

        LOCATED_MODELS.add(Case)
