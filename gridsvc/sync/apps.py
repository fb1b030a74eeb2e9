from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "gridsvc.sync"
    label = "sync"
    verbose_name = "Phone sync protocol 同步"
