from django.apps import AppConfig


class AssistanceConfig(AppConfig):
    name = "gridsvc.assistance"
    label = "assistance"
    verbose_name = "People's services 民生服务"

    def ready(self) -> None:
        from gridsvc.chain.scope import HOUSEHOLD_PATHS

        from .models import (
            Application,
            ApplicationDocument,
            ApplicationEvent,
            Migrant,
            MigrantMove,
        )

        HOUSEHOLD_PATHS[Application] = "household__"
        HOUSEHOLD_PATHS[ApplicationEvent] = "application__household__"
        HOUSEHOLD_PATHS[ApplicationDocument] = "application__household__"
        HOUSEHOLD_PATHS[Migrant] = "resident__household__"
        HOUSEHOLD_PATHS[MigrantMove] = "migrant__resident__household__"

        # the 应保尽保 map layer joins the layer registry (layers knows nothing of assistance)
        from gridsvc.layers.services import register_layer

        from .layer import gaps_layer

        register_layer(gaps_layer())
