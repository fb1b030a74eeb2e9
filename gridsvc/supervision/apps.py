from django.apps import AppConfig


class SupervisionConfig(AppConfig):
    name = "gridsvc.supervision"
    label = "supervision"
