"""``manage.py load_city --size small [--reset | --remove] [--check]``: the benchmark city.

Loads the synthetic city of ``fixtures/city.py`` (tiny, small, medium, large) beside whatever
else the database holds (the demo street included): its streets have codes of their own
(6299…) and its members log in as ``city-…``. Idempotent: if that size is loaded already it
does nothing; another size (or ``--reset``) is removed first. ``--remove`` only removes it.
``--status`` prints which size is loaded. ``--check`` compares every building's stored grid and
compound with what PostGIS derives from the footprints (0 mismatches expected).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from fixtures import city


class Command(BaseCommand):
    help = "Load the benchmark city (tiny|small|medium|large) by COPY; idempotent."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--size", choices=list(city.SIZES), default="small")
        parser.add_argument("--reset", action="store_true", help="remove the city, then load")
        parser.add_argument("--remove", action="store_true", help="remove the city only")
        parser.add_argument("--status", action="store_true", help="print the loaded size")
        parser.add_argument("--check", action="store_true", help="check derived grid/compound")
        parser.add_argument("--workers", type=int, default=None, help="generator processes")
        parser.add_argument(
            "--checked",
            action="store_true",
            help="keep foreign-key checks on during COPY (default: on below 2M rows)",
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **opts) -> None:  # type: ignore[no-untyped-def]
        log = self.stdout.write
        loaded, figures = city.loaded_size()
        if opts["status"]:
            self.stdout.write(json.dumps({"loaded": loaded, **figures}))
            return
        if opts["remove"]:
            if loaded is None:
                log("no city loaded")
            else:
                city.remove(log=log)
            return
        size = opts["size"]
        result: dict = {"size": size, "loaded_before": loaded}
        if loaded == size and not opts["reset"]:
            log(f"city {size} already loaded ({figures}); --reset to reload")
            result["action"] = "none"
        else:
            if loaded is not None:
                log(f"removing the city loaded before ({loaded}) …")
                result["removed"] = city.remove(log=log)
            result.update(
                city.load(
                    size,
                    workers=opts["workers"],
                    checked=True if opts["checked"] else None,
                    log=log,
                )
            )
            result["action"] = "loaded"
            now, _f = city.loaded_size()
            if now != size:
                raise CommandError(f"after loading, the database holds {now!r}, not {size!r}")
        if opts["check"]:
            sample = None if city.SIZES[size].buildings <= 20_000 else 97
            bad = city.check_derived(sample)
            result["derived_mismatches"] = bad
            log(f"derived grid/compound mismatches: {bad}" + (" (sampled)" if sample else ""))
            if bad:
                raise CommandError(f"{bad} buildings disagree with the derived grid/compound")
        if opts["json"]:
            self.stdout.write(json.dumps(result, default=str))
        else:
            log(self.style.SUCCESS(f"city {size} ready"))
