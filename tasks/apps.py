from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"

    def ready(self):
        # Tasks build on jobs (DESIGN.md: imports point down); the brokerage asks the rules it is given.
        from jobs.services import brokerage, submission

        from .services.cache import check_submitted_transformations
        from .site_filter import site_rules

        brokerage.register_site_filter(site_rules)
        # Every job submission (the jobs API and tasks alike) may use only cached code its submitter may read.
        submission.register_submission_check(check_submitted_transformations)
