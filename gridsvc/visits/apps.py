from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "gridsvc.visits"
    label = "visits"
