from django.apps import AppConfig


class TerritoryConfig(AppConfig):
    name = "gridsvc.territory"
    label = "territory"

    def ready(self) -> None:
        # the status history's save hook (a tag change on any Resident save is recorded)
        from . import history  # noqa: F401
