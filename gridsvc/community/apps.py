from django.apps import AppConfig


class CommunityConfig(AppConfig):
    name = "gridsvc.community"
    label = "community"
    verbose_name = "Community ethnic-unity work 民族团结进步创建"

    def ready(self) -> None:
        from gridsvc.chain.scope import LOCATED_MODELS
        from gridsvc.visits import services as visits
        from gridsvc.visits.models import RELIGIOUS_VENUES

        from .models import LOCATED
        from .services import chase_screening
        from .venues import generate_venue_tasks

        LOCATED_MODELS.update(LOCATED)
        # the visits' daily run and 一日一报 list reach the community through their hooks
        # (the visits do not import the community, which stands above them)
        visits.GROUP_TASK_MAKERS[RELIGIOUS_VENUES] = generate_venue_tasks
        if chase_screening not in visits.DAILY_REPORT_CHASERS:
            visits.DAILY_REPORT_CHASERS.append(chase_screening)
