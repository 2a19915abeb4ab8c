"""The one FilterSet for jobs, shared by the API, the portal pages and the selectors.

Parameter names follow the PanDA monitor's URLs (`jobstatus`, `computingsite`, ...), so
links people have kept for years keep their meaning; values use pandamon.grammar.
"""

from datetime import timedelta

import django_filters as filters
from django.db.models import Q
from django.utils import timezone

from pandamon.grammar import ChoiceFilter, GrammarFilterSet, IntFilter, TextFilter

from .choices import JobStatus
from .models import Job

# jobtype= is a shortcut over prodSourceLabel, as in BigPanDA.
JOB_TYPES = {
    "analysis": ("user", "panda"),
    "production": ("managed",),
    "test": ("test", "ptest", "prod_test", "rc_test"),
}


class JobFilterSet(GrammarFilterSet):
    pandaid = IntFilter(help_text="PandaID (a range like 100:200 works).")
    jobstatus = ChoiceFilter(field_name="status", choices=JobStatus.choices, help_text="Job state; *ing works.")
    jobtype = ChoiceFilter(
        method="filter_jobtype", choices=[(name, name) for name in JOB_TYPES], help_text="analysis, production, test."
    )
    computingsite = TextFilter(field_name="computing_site__name", help_text="Site name, e.g. BNL* .")
    cloud = TextFilter()
    prodsourcelabel = TextFilter(field_name="prod_source_label")
    produsername = TextFilter(field_name="prod_user_name", help_text="Owner's user name.")
    produserid = TextFilter(field_name="prod_user_id", help_text="Owner's certificate DN.")
    workinggroup = TextFilter(field_name="working_group")
    processingtype = TextFilter(field_name="processing_type")
    taskid = IntFilter(field_name="task_id")
    jobsetid = IntFilter(field_name="jobset_id")
    jobname = TextFilter(field_name="job_name")
    attemptnr = IntFilter(field_name="attempt_nr")
    priority = IntFilter(field_name="current_priority", help_text="Current priority; ranges like 900:1100.")
    corecount = IntFilter(field_name="core_count")
    modificationhost = TextFilter(field_name="modification_host", help_text="Worker node.")
    transexitcode = IntFilter(field_name="trans_exit_code")
    statenotupdated = filters.NumberFilter(
        method="filter_state_not_updated", min_value=0, help_text="Stalled: in its state for more than N hours."
    )
    piloterrorcode = IntFilter(field_name="pilot_error_code")
    exeerrorcode = IntFilter(field_name="exe_error_code")
    ddmerrorcode = IntFilter(field_name="ddm_error_code")
    jobdispatchererrorcode = IntFilter(field_name="job_dispatcher_error_code")
    taskbuffererrorcode = IntFilter(field_name="task_buffer_error_code")
    superrorcode = IntFilter(field_name="sup_error_code")
    brokerageerrorcode = IntFilter(field_name="brokerage_error_code")
    servererrorcode = IntFilter(field_name="server_error_code")

    window_field = "modification_time"
    default_hours = 12
    deep_params = ("pandaid", "taskid", "jobsetid", "jobname", "statenotupdated")
    # Counted together in one GROUP BY over the window (pandamon.listing.facet_counts).
    facet_fields = ("jobstatus", "computingsite", "cloud", "prodsourcelabel", "produsername", "taskid",
                    "processingtype", "attemptnr", "corecount")  # fmt: skip
    sort_keys = {
        "pandaid": ("pandaid",),
        "modificationtime": ("modification_time", "pandaid"),
        "creationtime": ("creation_time", "pandaid"),
        "statetime": ("state_change_time", "pandaid"),
        "priority": ("current_priority", "pandaid"),
        "attemptnr": ("attempt_nr", "pandaid"),
    }
    default_sort = "-pandaid"

    class Meta:
        model = Job
        fields = []

    def filter_jobtype(self, queryset, name, value):
        if value is None:
            return queryset

        def term_q(_lookup, term):
            return Q(prod_source_label__in=[label for job_type in term.value for label in JOB_TYPES[job_type]])

        return queryset.filter(value.to_q(None, term_q))

    def filter_state_not_updated(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(state_change_time__lt=timezone.now() - timedelta(hours=float(value)))
