from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _install_probe_function(using: str = "default", **kwargs: object) -> None:
    """After every ``migrate`` (and test database set-up): the change feed's probe as a
    function in the database, the one the code running now builds
    (:func:`gridsvc.visits.sync.install_probe_function`)."""
    from gridsvc.visits.sync import install_probe_function

    install_probe_function(using)


class SyncConfig(AppConfig):
    name = "gridsvc.sync"
    label = "sync"
    verbose_name = "Phone sync protocol 同步"

    def ready(self) -> None:
        post_migrate.connect(
            _install_probe_function, sender=self, dispatch_uid="gridsvc.sync.probe_function"
        )
