from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from datasets.models import PlacementRule
from datasets.services import policy


class Command(BaseCommand):
    help = (
        "Apply the enabled placement rules retroactively: to the datasets they have not decided yet "
        "(registered before the rule, or waiting for a first replica). See docs/ddm-policy.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rule", action="append", default=[], help="Rule name (repeatable; default: all).")
        parser.add_argument("--since-days", type=int, help="Only datasets registered in the last N days.")

    def handle(self, *args, rule, since_days, **options):
        rule_ids = None
        if rule:
            found = dict(PlacementRule.objects.filter(name__in=rule).values_list("name", "pk"))
            missing = [name for name in rule if name not in found]
            if missing:
                raise CommandError(f"no placement rule named {missing[0]}")
            rule_ids = set(found.values())
        since = timezone.now() - timedelta(days=since_days) if since_days else None
        counts = policy.apply_retroactively(rule_ids=rule_ids, since=since)
        self.stdout.write(self.style.SUCCESS(", ".join(f"{key}: {value}" for key, value in counts.items())))
