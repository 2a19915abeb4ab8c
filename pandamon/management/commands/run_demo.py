import io
import signal
import subprocess
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from pandamon import demo
from sites.models import Site
from sites.services import create_pilot_credential

DEFAULT_PILOT_SITES = ["BNL", "UTA", "CERNCAF", "LYON", "GLASGOW", "MILANO"]


class Command(BaseCommand):
    help = "Run the whole system with a live demo: gunicorn, Celery worker + beat, a pilot factory and demo jobs."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--pilot-sites", nargs="+", default=DEFAULT_PILOT_SITES)
        parser.add_argument("--jobs-every", type=int, default=45, help="Submit a batch of demo jobs every N seconds.")
        parser.add_argument("--batch", type=int, default=12, help="Demo jobs per batch.")
        parser.add_argument("--duration", type=int, default=0, help="Stop after N seconds (0 = until Ctrl-C).")

    def handle(self, *args, port, pilot_sites, jobs_every, batch, duration, **options):
        base_url = f"http://127.0.0.1:{port}"
        user_token, pilot_token = self._prepare(pilot_sites)
        group = demo.ProcessGroup(settings.VAR_DIR / "logs")
        # A SIGTERM (kill, a supervisor, `timeout`) stops the demo like Ctrl-C does, so its server,
        # worker, factory and pilots are stopped too instead of left running.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            self._start_services(group, port)
            if not demo.wait_until_up(f"{base_url}/api/v1/sites/?limit=1"):
                raise SystemExit(f"the web server did not come up; see {group.log_dir}/gunicorn.log")
            self._start_factory(group, base_url, pilot_sites, pilot_token)
            self._banner(base_url, group)
            self._submit_loop(group, base_url, user_token, pilot_sites, jobs_every, batch, duration)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping ...")
        finally:
            self._stop_factory()
            group.stop()

    def _prepare(self, pilot_sites):
        call_command("migrate", verbosity=0)
        call_command("load_grid", storage_root=str(settings.VAR_DIR / "storage"), stdout=self.stdout)
        call_command("create_api_user", "admin", superuser=True, password="admin", stdout=io.StringIO())
        for name in ("alice", "bob"):
            call_command("create_api_user", name, password=name, stdout=io.StringIO())
        from rest_framework.authtoken.models import Token

        user_token = Token.objects.get(user__username="alice").key
        sites = list(Site.objects.filter(name__in=pilot_sites))
        _, pilot_token = create_pilot_credential(name=f"demo-pilots-{int(time.time())}", sites=sites)
        self.input_lfns = demo.seed_input_dataset(get_user_model().objects.get(username="admin"))
        return user_token, pilot_token

    def _start_services(self, group, port):
        group.start("gunicorn", [demo.python(), "-m", "gunicorn", "pandamon.wsgi", "--bind", f"127.0.0.1:{port}",
                                 "--workers", "3", "--timeout", "60", "--access-logfile", "-"])  # fmt: skip
        group.start("celery", [demo.python(), "-m", "celery", "-A", "pandamon", "worker", "--beat", "--concurrency", "2",
                               "--loglevel", "INFO", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")])  # fmt: skip

    def _start_factory(self, group, base_url, pilot_sites, token):
        """A local pilot factory for the demo sites (docs/pilot-factory.md): pilots start while a site has
        activated jobs (at most 3 at a time per site), leave when it has none, and stop with the demo."""
        for site in pilot_sites:
            (settings.VAR_DIR / "storage" / site).mkdir(parents=True, exist_ok=True)
        self.factory = group.start("pilot-factory", [demo.python(), "manage.py", "pilot_factory", "--name", "demo",
                                      "--sites", ",".join(pilot_sites), "--plugin", "local", "--server", base_url,
                                      "--period", "5", "--max-queued", "3", "--max-pilots-per-site", "3",
                                      "--pilot-args", "--heartbeat 10 --idle-sleep 5 --max-idle-polls 2",
                                      "--workdir", str(settings.VAR_DIR / "factory"), "--kill-pilots-on-exit"],
                    env=demo.child_env(PANDA_PILOT_TOKEN=token))  # fmt: skip

    def _stop_factory(self):
        """The factory first, while the server still answers: its pilots then report their jobs on the way out."""
        factory = getattr(self, "factory", None)
        if factory is not None and factory.poll() is None:
            factory.send_signal(signal.SIGTERM)
            try:
                factory.wait(timeout=30)
            except subprocess.TimeoutExpired:
                factory.kill()

    def _banner(self, base_url, group):
        self.stdout.write(self.style.SUCCESS(f"\nPanDA monitor is running at {base_url}/"))
        self.stdout.write(f"  admin: {base_url}/admin/ (admin/admin)   API docs: {base_url}/api/docs/")
        self.stdout.write(f"  pilots: {base_url}/scheduler/ (the demo's local pilot factory)")
        self.stdout.write(f"  logs of every process: {group.log_dir}/   Ctrl-C stops everything.\n")

    def _submit_loop(self, group, base_url, token, sites, every, batch, duration):
        rng = demo.random_source()
        started = time.monotonic()
        next_batch = started
        while not duration or time.monotonic() - started < duration:
            if time.monotonic() >= next_batch:
                pandaids = demo.submit(base_url, token, demo.demo_jobs(sites, batch, rng, self.input_lfns))
                self.stdout.write(f"submitted {len(pandaids)} demo jobs ({pandaids[0]}..{pandaids[-1]})")
                next_batch = time.monotonic() + every
            dead = group.dead()
            if dead:
                raise SystemExit(f"process(es) stopped unexpectedly: {', '.join(dead)}; see {group.log_dir}/")
            time.sleep(1)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
