from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "gridsvc.accounts"
    label = "accounts"
