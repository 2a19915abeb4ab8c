from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self):
        # The catalog calls the Activator and the Finisher through its callback registry.
        from .services import setupper

        setupper.register_handlers()
