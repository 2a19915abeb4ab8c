"""The one FilterSet for sites, shared by the site list page and /api/v1/sites/."""

from pandamon.grammar import ChoiceFilter, GrammarFilterSet, IntFilter, TextFilter

from .choices import GridFlavour, SiteStatus
from .models import Site


class SiteFilterSet(GrammarFilterSet):
    name = TextFilter(help_text="Site name; wildcards work: BNL*, *DISK.")
    cloud = TextFilter(field_name="cloud__name", help_text="Cloud name, e.g. USA or US*|CERN.")
    tier = IntFilter(help_text="0 = CERN, 1 = national centre, 2/3 = institutes; 1:2 works.")
    status = ChoiceFilter(choices=SiteStatus.choices, help_text="online, brokeroff, test, offline.")
    grid = ChoiceFilter(field_name="grid_flavour", choices=GridFlavour.choices, help_text="osg, lcg, nordic, local.")

    facet_fields = ("cloud", "tier", "status")
    # Sites are few (hundreds): the list reads as a table grouped by cloud, then tier.
    sort_keys = {
        "cloud": ("cloud__name", "tier", "name"),
        "tier": ("tier", "cloud__name", "name"),
        "status": ("status", "cloud__name", "name"),
        "name": ("name",),
    }
    default_sort = "cloud"

    class Meta:
        model = Site
        fields = []
