from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "gridsvc.reports"
    label = "reports"
