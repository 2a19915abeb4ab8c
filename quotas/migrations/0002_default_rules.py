"""Default quota rules per role, so a new installation enforces sensible limits (edit them in the admin).

PanDA's default per-user running-jobs cap is 10,000 (reference/panda-server.md §5.3)."""

from django.db import migrations

DEFAULTS = [
    # (role, resource, soft, hard)
    ("user", "running_jobs", None, 10000),
    ("user", "queued_jobs", 5000, 20000),
    ("user", "cpu_hours_week", 50000, None),
    ("production_manager", "running_jobs", None, None),
    ("production_manager", "queued_jobs", None, None),
    ("production_manager", "cpu_hours_week", None, None),
    ("group", "running_jobs", None, 20000),
    ("group", "queued_jobs", 20000, 50000),
]


def add_defaults(apps, schema_editor):
    QuotaRule = apps.get_model("quotas", "QuotaRule")
    for role, resource, soft, hard in DEFAULTS:
        QuotaRule.objects.get_or_create(
            subject_kind="role", subject_name=role, resource=resource,
            defaults={"soft_limit": soft, "hard_limit": hard, "comment": "installation default"},
        )  # fmt: skip


def remove_defaults(apps, schema_editor):
    apps.get_model("quotas", "QuotaRule").objects.filter(comment="installation default").delete()


class Migration(migrations.Migration):
    dependencies = [("quotas", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, remove_defaults)]
