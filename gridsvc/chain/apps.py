from django.apps import AppConfig


class ChainConfig(AppConfig):
    name = "gridsvc.chain"
    label = "chain"
