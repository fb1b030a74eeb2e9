from django.apps import AppConfig


class LayersConfig(AppConfig):
    name = "gridsvc.layers"
    label = "layers"
    verbose_name = "Map layers 图层"

    def ready(self) -> None:
        from . import signals, tasks  # noqa: F401 - register the worker's tasks

        signals.connect()
