from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "gridsvc.web"
    label = "web"
