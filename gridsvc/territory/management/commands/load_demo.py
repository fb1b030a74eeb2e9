"""``manage.py load_demo [--reset]``: load the demo street (华林山社区) and its data.

Idempotent: if the demo street is already there it does nothing unless ``--reset``, which
empties the database first (``flush``: a benchmark city loaded by ``load_city`` goes too) and
loads again. Deterministic: same data each time. Beside a benchmark city the loaders keep to
the demo street: they neither build the demo on the city's households, grids and cases nor
rewrite the city's rows (tests/test_demo_with_city.py).
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from fixtures import DEMO_STEPS
from fixtures.demo_street import STREET_CODE
from gridsvc.territory.models import Street


class Command(BaseCommand):
    help = "Load the demo street 华林山社区 (idempotent; --reset to reload from scratch)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--reset", action="store_true", help="flush the database first (a loaded city too)"
        )

    def handle(self, *args, reset: bool = False, **options) -> None:  # type: ignore[no-untyped-def]
        if Street.objects.filter(code=STREET_CODE).exists():
            if not reset:
                from django.core.management.base import CommandError

                from gridsvc.crypto import keys_read_stored_data

                if keys_read_stored_data() is False:  # loaded under other keys: say so
                    raise CommandError(
                        "the demo street in this database was loaded under other field keys "
                        "(GRIDSVC_FIELD_KEYS; e.g. another checkout's var/secrets.env): its "
                        "residents cannot be read. Use the keys it was loaded with, or reload "
                        "it: manage.py load_demo --reset (drops everything in this database)"
                    )
                self.stdout.write("demo street already loaded (use --reset to reload)")
                return
            call_command("flush", interactive=False, verbosity=0)
        for step in DEMO_STEPS:
            self.stdout.write(f"loading {step} …")
            import_string(step)(stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS("demo street ready"))
