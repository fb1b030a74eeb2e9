from django.apps import AppConfig


class CommunityConfig(AppConfig):
    name = "gridsvc.community"
    label = "community"
    verbose_name = "Community ethnic-unity work 民族团结进步创建"

    def ready(self) -> None:
        from gridsvc.chain.scope import LOCATED_MODELS

        from .models import LOCATED

        LOCATED_MODELS.update(LOCATED)
