from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "gridsvc.audit"
    label = "audit"
