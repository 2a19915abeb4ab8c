from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"

    def ready(self):
        # quotas observes jobs (DESIGN.md: imports point down); the jobs layer calls the check it is given.
        from jobs.services import submission

        from .services.enforcement import check_submission

        submission.register_submission_check(check_submission)
