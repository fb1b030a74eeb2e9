from django.apps import AppConfig


class CasesConfig(AppConfig):
    name = "gridsvc.cases"
    label = "cases"
