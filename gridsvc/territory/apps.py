from django.apps import AppConfig


class TerritoryConfig(AppConfig):
    name = "gridsvc.territory"
    label = "territory"
