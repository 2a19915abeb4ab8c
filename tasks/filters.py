"""The one FilterSet for tasks (API and pages) and the one for a task's input pieces.

Parameter names follow the BigPanDA task list (`taskname`, `username`, `workinggroup`,
`tasktype`); values use pandamon.grammar (`*` wildcards, `|`, `!`, ranges).
"""

import django_filters as filters
from django import forms

from pandamon.errors import PermissionDenied
from pandamon.grammar import ChoiceFilter, GrammarFilterSet, IntFilter, TextFilter

from .choices import InputStatus, TaskStatus, TaskType
from .models import Task, TaskInput


class TaskFilterSet(GrammarFilterSet):
    taskid = IntFilter(field_name="task_id", help_text="Task ID (a range like 100:200 works).")
    status = ChoiceFilter(choices=TaskStatus.choices, help_text="Task state, e.g. running|ready, !done.")
    tasktype = ChoiceFilter(field_name="type", choices=TaskType.choices, help_text="analysis or production.")
    username = TextFilter(field_name="owner_name", help_text="Owner's user name.")
    taskname = TextFilter(field_name="name", help_text="Task name; * wildcards, e.g. user.alice.*")
    workinggroup = TextFilter(field_name="working_group")
    project = TextFilter()
    inputdataset = TextFilter(field_name="input_dataset")
    outputdataset = TextFilter(field_name="output_dataset")
    site = TextFilter()
    # A text widget: NullBooleanSelect would read mine=1 as "unknown".
    mine = filters.BooleanFilter(method="filter_mine", widget=forms.TextInput,
                                 help_text="mine=1 (or true): only the caller's own tasks, of any age.")  # fmt: skip

    window_field = "modified_at"
    default_hours = 7 * 24
    deep_params = ("taskid", "taskname", "outputdataset", "mine")
    facet_fields = ("status", "tasktype", "username", "workinggroup", "project")
    sort_keys = {
        "taskid": ("task_id",),
        "modificationtime": ("modified_at", "task_id"),
        "creationtime": ("created_at", "task_id"),
        "priority": ("priority", "task_id"),
    }
    default_sort = "-taskid"

    class Meta:
        model = Task
        fields = []

    def filter_mine(self, queryset, name, value):
        if not value:
            return queryset
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated:
            raise PermissionDenied("mine=1 lists the caller's own tasks: log in or give a token")
        return queryset.filter(owner=user)


class TaskInputFilterSet(GrammarFilterSet):
    status = ChoiceFilter(choices=InputStatus.choices, help_text="pending, assigned, done, failed.")
    lfn = TextFilter(help_text="File name; * wildcards.")
    pandaid = IntFilter(field_name="job_id", help_text="PandaID of the job holding the piece.")

    class Meta:
        model = TaskInput
        fields = []
