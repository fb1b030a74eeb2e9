from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "gridsvc.accounts"
    label = "accounts"

    def ready(self) -> None:
        from . import checks, schema, throttle  # noqa: F401 - registers checks, schema, signals

        checks.refuse_published_keys_at_startup()
