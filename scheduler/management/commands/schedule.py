"""``manage.py schedule FILE``: answer a scenario file (numa-fit/v1, cluster-scenario/v1 or v2 evacuate) as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from scheduler.core import PinningSyntaxError
from scheduler.whatif import answer


class Command(BaseCommand):
    help = "Answer a scenario file (numa-fit/v1, cluster-scenario/v1 or v2 evacuate) with the scheduler, as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="scenario JSON file")

    def handle(self, *args, file: Path, **options) -> None:
        try:
            document = json.loads(file.read_text())
        except OSError as err:
            raise CommandError(f"cannot read {file}: {err.strerror or err}") from err
        except json.JSONDecodeError as err:
            raise CommandError(f"{file} is not valid JSON: {err}") from err
        try:
            result = answer(document)
        except PinningSyntaxError as err:
            raise CommandError(f"{file}: bad CPU pinning: {err}") from err
        except (ValueError, TypeError, LookupError) as err:
            raise CommandError(f"{file}: {err}") from err
        self.stdout.write(json.dumps(result, indent=2))
