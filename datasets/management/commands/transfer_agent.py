"""manage.py transfer_agent: a dedicated subscription + transfer agent process.

Celery beat runs the same passes every few seconds (datasets.tasks); a site with much
data to move runs one or more of these next to it. Any number may run at once: each
claims different rows. Killed at any moment, nothing is lost: the requests it held
are queued again once their lease expires (PANDA_TRANSFER_LEASE_SECONDS).
"""

import os
import socket
import time

from django.core.management.base import BaseCommand

from datasets.services import subscriptions, transfers


class Command(BaseCommand):
    help = "Evaluate subscriptions and copy queued transfers, in a loop (or --once)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--until-idle", action="store_true", help="loop until nothing is left to do")
        parser.add_argument("--batch", type=int, default=None, help="requests claimed per pass")
        parser.add_argument("--idle-sleep", type=float, default=2.0, help="seconds to wait when there is no work")
        parser.add_argument("--name", default=f"agent@{socket.gethostname()}:{os.getpid()}")

    def handle(self, *args, **options):
        while True:
            evaluated = subscriptions.evaluate_subscriptions()
            counts = transfers.transfer_batch(agent=options["name"], batch=options["batch"])
            if counts["claimed"] or evaluated["evaluated"]:
                self.stdout.write(f"subscriptions {evaluated} transfers {counts}")
                self.stdout.flush()
            if options["once"]:
                return
            if not counts["claimed"] and not evaluated["evaluated"]:
                if options["until_idle"] and not transfers.pending_now():
                    return
                time.sleep(options["idle_sleep"])
