from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"

    def ready(self):
        # quotas observes jobs (DESIGN.md: imports point down); the jobs layer calls the check it is given.
        from datasets.services import replicas
        from jobs.services import brokerage, submission

        from .services.enforcement import check_storage, check_submission
        from .services.site_filter import site_rules

        submission.register_submission_check(check_submission)
        replicas.register_replica_check(check_storage)
        brokerage.register_site_filter(site_rules)
