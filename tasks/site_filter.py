"""The task's site lists as brokerage rules: a task's `site` (run only there) and `excluded_sites`;
the jobs of a paused task are held.

Registered with jobs.services.brokerage (tasks/apps.py): the jobs layer does not import tasks, it
asks the filters higher layers registered. Read at each brokerage pass, so changing a task's
excluded sites applies to its jobs not yet brokered.
"""

from jobs.services.brokerage import SiteRule

from .choices import TaskStatus
from .models import Task


def site_rules(jobs):
    """{pandaid: [SiteRule, ...]} for the jobs of tasks with site lists (one query per batch)."""
    task_ids = {job.task_id for job in jobs if job.task_id}
    if not task_ids:
        return {}
    rules_of_task = {}
    tasks = Task.objects.filter(pk__in=task_ids).values_list("pk", "site", "excluded_sites", "status")
    for task_id, site, excluded, status in tasks:
        rules = []
        if status == TaskStatus.PAUSED:
            rules.append(SiteRule("task_paused", hold=f"task {task_id} is paused"))
        names = frozenset(name for name in excluded or () if isinstance(name, str) and name)
        if names:
            rules.append(SiteRule("task_excluded", f"excluded by task {task_id}", exclude=names))
        if site:
            rules.append(SiteRule("task_site", f"not the site of task {task_id} ({site})", only=frozenset([site])))
        if rules:
            rules_of_task[task_id] = rules
    return {job.pandaid: rules_of_task[job.task_id] for job in jobs if job.task_id in rules_of_task}
