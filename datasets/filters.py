"""The FilterSets of the catalog, shared by the API and the dataset browser pages.

Values use the one grammar (pandamon.grammar): `*` wildcards, `|` or, `!` not. Dataset
names and LFNs keep the DQ2 name-pattern rules on top of it: a term holds only the
characters a name can hold, plus `*`.
"""

import dataclasses
import re

import django_filters as filters
from django import forms
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from jobs.choices import JobStatus
from jobs.models import JobFile
from pandamon.grammar import (
    ChoiceFilter,
    GrammarFilterSet,
    IntFilter,
    IntPatternField,
    TextFilter,
    TextPatternField,
)

from .choices import Activity, CallbackKind, CallbackState, DatasetKind, DatasetState, SubscriptionState, TransferState
from .models import (
    ConsistencyCheck,
    Dataset,
    DatasetFile,
    DatasetReplica,
    File,
    ReplicaCallback,
    Subscription,
    TransferChannelStat,
    TransferRequest,
)
from .naming import CATEGORIES
from .selectors import WILDCARD

# Parameters of the API calls sharing these FilterSets that are not filters.
API_PARAMS = ("stream",)


NAME_TERMS = "letters, digits, _ - . : + and * wildcards"
USERNAME_TERM = re.compile(r"^[\w.@+\-*]{1,150}$")
SITE_TERM = re.compile(r"^[A-Za-z0-9_.\-*]{1,64}$")


class NamePatternField(TextPatternField):
    """The grammar's text pattern restricted to the characters of a DQ2 name (plus `*`)."""

    def __init__(self, *args, allowed=WILDCARD, allowed_text=NAME_TERMS, **kwargs):
        super().__init__(*args, allowed=allowed, allowed_text=allowed_text, **kwargs)


class NameFilter(TextFilter):
    """A dataset name, a name field or an LFN: the DQ2 name pattern (`mc11.*.AOD.*`) in the grammar."""

    field_class = NamePatternField


@extend_schema_field(OpenApiTypes.STR)  # the schema's type: the FilterSet's method applies it, no model field
class SiteFilter(filters.Filter):
    """A site name pattern, applied by the FilterSet's method inside an EXISTS over the replicas."""

    field_class = TextPatternField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allowed=SITE_TERM, allowed_text="site names (letters, digits, _ - .) and *", **kwargs)


class PercentField(IntPatternField):
    """A single whole percentage, 0 to 100."""

    def clean(self, value):
        pattern = super().clean(value)
        if pattern is None:
            return None
        term = pattern.terms[0]
        single = len(pattern.terms) == 1 and not term.negated and not term.is_range and term.value is not None
        if not single or not 0 <= term.value <= 100:
            raise forms.ValidationError("give one whole percentage from 0 to 100")
        return term.value


@extend_schema_field(OpenApiTypes.INT)
class PercentFilter(filters.Filter):
    field_class = PercentField


class DatasetFilterSet(GrammarFilterSet):
    name = NameFilter(help_text="Name or pattern with * wildcards, e.g. mc11.*.AOD.*")
    kind = ChoiceFilter(choices=DatasetKind.choices, help_text="dataset, container or datablock.")
    state = ChoiceFilter(choices=DatasetState.choices, help_text="open, closed or frozen.")
    category = ChoiceFilter(
        choices=[(name, name) for name in CATEGORIES], help_text="Browser category: mc, csc, user, dispatch, ..."
    )
    owner = NameFilter(field_name="owner__username", allowed=USERNAME_TERM, allowed_text="user names and *")
    series = NameFilter()
    number = NameFilter()
    physics = NameFilter()
    stage = NameFilter()
    format = NameFilter()
    release = NameFilter()
    site = SiteFilter(method="filter_site", help_text="Resident at a site (a replica there), e.g. BNL*.")
    notsite = SiteFilter(method="filter_notsite", help_text="Not resident at the site (no replica there).")
    minpct = PercentFilter(
        method="filter_minpct",
        help_text="With site=: only replicas at least this % complete count; alone: such a replica anywhere.",
    )

    window_field = "modified_at"  # no default window: hours=/days= ask for recently changed datasets
    facet_fields = ("category", "kind", "state", "series", "stage", "format", "release", "physics")
    sort_keys = {
        "name": ("name",),
        "created": ("created_at", "name"),
        "modified": ("modified_at", "name"),
        "files": ("n_files", "name"),
        "bytes": ("bytes", "name"),
    }
    default_sort = "name"
    extra_params = API_PARAMS

    class Meta:
        model = Dataset
        fields = []

    def filter_site(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(Exists(self._replicas_at(value)))

    def filter_notsite(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(~Exists(DatasetReplica.objects.filter(_site_q(value), dataset=OuterRef("pk"))))

    def filter_minpct(self, queryset, name, value):
        # With site= the percentage narrows the replicas filter_site looks for; alone, any site counts.
        if value is None or self.form.cleaned_data.get("site") is not None:
            return queryset
        return queryset.filter(Exists(self._replicas_at(None)))

    def _replicas_at(self, site_pattern):
        """Replicas of the outer dataset at matching sites, at least minpct complete.

        An EXISTS, not a join: a dataset at two matching sites is still one row."""
        replicas = DatasetReplica.objects.filter(dataset=OuterRef("pk"))
        if site_pattern is not None:
            replicas = replicas.filter(_site_q(site_pattern))
        minpct = self.form.cleaned_data.get("minpct")
        if minpct:
            # files_present / n_files >= minpct / 100, in integers.
            replicas = replicas.alias(present_x100=F("files_present") * 100).filter(
                present_x100__gte=OuterRef("n_files") * minpct
            )
        return replicas


def _site_q(pattern):
    """A site pattern (`BNL*|CERN*`) on a replica's site name."""
    return pattern.to_q("site__name", TextFilter.term_q)


class FileFilterSet(GrammarFilterSet):
    lfn = NameFilter(help_text="LFN or pattern with * wildcards.")
    guid = filters.UUIDFilter()

    sort_keys = {"lfn": ("lfn",)}
    default_sort = "lfn"
    extra_params = API_PARAMS

    class Meta:
        model = File
        fields = []


class DatasetFileFilterSet(FileFilterSet):
    """The files of one dataset on its page (selectors.version_files): the page's own parameters are
    not filters, and the LFN order is on `lfn_order` (why: see version_files)."""

    sort_keys = {"lfn": ("lfn_order",)}
    extra_params = ("version", "allreplicas")


class BlockFilterSet(GrammarFilterSet):
    """The blocks summary: input files of jobs changed in the window (see selectors.input_blocks)."""

    block = NameFilter(help_text="Datablock (or dataset) name or pattern.")
    jobstatus = ChoiceFilter(field_name="job__status", choices=JobStatus.choices)
    computingsite = NameFilter(field_name="job__computing_site__name")
    cloud = NameFilter(field_name="job__cloud")
    prodsourcelabel = NameFilter(field_name="job__prod_source_label")
    taskid = IntFilter(field_name="job__task_id")

    window_field = "job__modification_time"
    # Every job a pilot runs heartbeats within the hour, so 3 hours holds all that is being processed;
    # the summary joins each job to its files, so the window sets its cost (12 h: ~1 s at 100,000 jobs).
    default_hours = 3
    facet_fields = ("jobstatus", "computingsite", "cloud", "prodsourcelabel")

    class Meta:
        model = JobFile
        fields = []


# --- The data flow: subscriptions, transfers, channels, callbacks, consistency checks ---------

SITE_NAME_TEXT = "site names (letters, digits, _ - .) and *"


class SiteNameFilter(TextFilter):
    """A site name or pattern on a site foreign key's name (`BNL*|CERN*`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", "Site name or pattern, e.g. BNL*.")
        super().__init__(*args, allowed=SITE_TERM, allowed_text=SITE_NAME_TEXT, **kwargs)


@extend_schema_field(OpenApiTypes.STR)  # applied by a FilterSet method: no model field gives the schema its type
class MethodNameFilter(NameFilter):
    """A name pattern that the FilterSet's method applies."""


class SubscriptionFilterSet(GrammarFilterSet):
    id = IntFilter()
    dataset = NameFilter(field_name="dataset__name", help_text="Dataset (or container) name or pattern.")
    site = SiteNameFilter(field_name="site__name")
    state = ChoiceFilter(choices=SubscriptionState.choices, help_text="active, done, stuck, suspended.")
    activity = ChoiceFilter(choices=Activity.choices, help_text="user, production, dispatch, archival.")
    owner = NameFilter(field_name="owner_name", allowed=USERNAME_TERM, allowed_text="user names and *")

    window_field = "created_at"  # no default window: hours=/days= ask for recently created subscriptions
    deep_params = ("id",)
    facet_fields = ("state", "activity", "site", "owner")
    sort_keys = {"id": ("id",)}
    default_sort = "-id"

    class Meta:
        model = Subscription
        fields = []


class TransferRequestFilterSet(GrammarFilterSet):
    id = IntFilter()
    state = ChoiceFilter(choices=TransferState.choices, help_text="queued, submitted, done, failed.")
    destination = SiteNameFilter(field_name="destination__name")
    source = SiteNameFilter(field_name="source__name", help_text="The source of the last attempt.")
    activity = ChoiceFilter(choices=Activity.choices)
    lfn = NameFilter(field_name="file__lfn", help_text="LFN or pattern with * wildcards.")
    dataset = MethodNameFilter(method="filter_dataset", help_text="Files of a dataset (name or pattern).")
    tool = TextFilter(help_text="The tool that moved it (local, http); Not specified while none has.")

    window_field = "requested_at"  # no default window: queued requests stay visible however old
    deep_params = ("id", "lfn")
    facet_fields = ("state", "destination", "source", "activity", "tool")
    sort_keys = {"id": ("id",)}
    default_sort = "-id"

    class Meta:
        model = TransferRequest
        fields = []

    def filter_dataset(self, queryset, name, value):
        if value is None:
            return queryset
        # EXISTS, not a join: a file in two matching datasets is still one row.
        members = DatasetFile.objects.filter(value.to_q("dataset__name", TextFilter.term_q), file=OuterRef("file_id"))
        return queryset.filter(Exists(members))


class TransferChannelFilterSet(GrammarFilterSet):
    source = SiteNameFilter(field_name="source__name")
    destination = SiteNameFilter(field_name="destination__name")

    window_field = "hour"
    default_hours = 24
    facet_fields = ("source", "destination")
    sort_keys = {"hour": ("hour", "id")}
    default_sort = "-hour"
    extra_params = ("summary",)

    class Meta:
        model = TransferChannelStat
        fields = []

    @property
    def window(self):
        """The window starts at the top of its first hour: the hour rows are labelled by their start."""
        window = super().window
        if window is None or window.start is None:
            return window
        return dataclasses.replace(window, start=window.start.replace(minute=0, second=0, microsecond=0))


class ReplicaCallbackFilterSet(GrammarFilterSet):
    dataset = NameFilter(field_name="dataset__name")
    site = SiteNameFilter(field_name="site__name")
    kind = ChoiceFilter(choices=CallbackKind.choices, help_text="activate_jobs, archive, http.")
    state = ChoiceFilter(choices=CallbackState.choices, help_text="waiting, due, done, failed.")
    owner = NameFilter(field_name="owner_name", allowed=USERNAME_TERM, allowed_text="user names and *")

    window_field = "created_at"
    facet_fields = ("kind", "state", "site", "owner")
    sort_keys = {"id": ("id",)}
    default_sort = "-id"

    class Meta:
        model = ReplicaCallback
        fields = []


class ConsistencyCheckFilterSet(GrammarFilterSet):
    site = SiteNameFilter(field_name="site__name")

    window_field = "started_at"
    facet_fields = ("site",)
    sort_keys = {"started": ("started_at", "id")}
    default_sort = "-started"

    class Meta:
        model = ConsistencyCheck
        fields = []


# --- The portal's data-flow pages ----------------------------------------------------------------
# The same filters as the API's FilterSets; only the window differs: a page shows the work in a live state
# whatever its age and the rows that ended in the window (default: the last day or week), like the jobs
# dashboard, so its attribute summary counts a bounded selection.


class LiveRowsWindow:
    """A window on when rows ended that keeps every row in a live state while the window reaches now.

    The live arms are separate `state = X` terms, so PostgreSQL can answer each from a (partial) index on
    the state and OR the bitmaps with the ended-at index scan."""

    live_states = ()

    def window_q(self):
        window = self.window
        condition = window.q()
        if window.start is None and window.end is None:
            return condition
        if window.end is None or window.end > timezone.now():
            for state in self.live_states:
                condition |= Q(state=state)
        return condition


class SubscriptionPageFilterSet(LiveRowsWindow, SubscriptionFilterSet):
    """/subscriptions/: active, stuck and suspended subscriptions whatever their age, done ones by done_at."""

    window_field = "done_at"
    default_hours = 7 * 24
    deep_params = ("id", "dataset")  # a dataset named exactly: every subscription to it
    live_states = (SubscriptionState.ACTIVE, SubscriptionState.STUCK, SubscriptionState.SUSPENDED)


class TransferPageFilterSet(LiveRowsWindow, TransferRequestFilterSet):
    """/transfers/: queued and submitted requests whatever their age, done and failed ones by finished_at."""

    window_field = "finished_at"
    default_hours = 24
    deep_params = ("id", "lfn", "dataset")  # a file or a dataset named exactly: all of its transfers
    live_states = (TransferState.QUEUED, TransferState.SUBMITTED)


THROUGHPUT_MEASURES = ("bytes", "files", "failures")
THROUGHPUT_SPLITS = ("destination", "source", "channel")


class ChannelPageFilterSet(TransferChannelFilterSet):
    """/transfers/channels/: the hourly channel rows of the window, and how the throughput plot is drawn."""

    # One value each (no grammar): they choose how the plot is drawn, not which rows count.
    measure = filters.ChoiceFilter(method="no_filter", choices=[(m, m) for m in THROUGHPUT_MEASURES],
                                   help_text="The plot: bytes (per second), files or failures (per hour).")  # fmt: skip
    split = filters.ChoiceFilter(method="no_filter", choices=[(s, s) for s in THROUGHPUT_SPLITS],
                                 help_text="The plot's stacks: by destination, source or channel.")  # fmt: skip
    extra_params = ()

    def no_filter(self, queryset, name, value):
        return queryset
