from django.db import models


class SiteStatus(models.TextChoices):
    ONLINE = "online", "online: brokerage sends jobs, pilots fetch them"
    BROKEROFF = "brokeroff", "brokeroff: only jobs already assigned to it run"
    TEST = "test", "test: only jobs assigned to it run (test jobs)"
    OFFLINE = "offline", "offline: no brokerage, pilots get no jobs"


class GridFlavour(models.TextChoices):
    OSG = "osg", "OSG"
    LCG = "lcg", "LCG"
    NORDIC = "nordic", "NorduGrid"
    LOCAL = "local", "local batch farm"
