from django.apps import AppConfig


class LayersConfig(AppConfig):
    name = "gridsvc.layers"
    label = "layers"
