from django.apps import AppConfig


class PandamonConfig(AppConfig):
    name = "pandamon"
    verbose_name = "PanDA monitor core"
