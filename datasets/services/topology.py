"""The grid as data distribution sees it: Tier-1 endpoints and Tier-2s per cloud, media, pauses, preferences.

Loaded once per call (a few hundred sites), so a rule evaluation over many datasets asks
the database nothing more about sites. sites.Site has no media or endpoint role, so they
are inferred from the 2006 names (seed-grid.json): BNLTAPE and BNLDISK are storage
endpoints of the Tier-1 BNL, TIERDISK/TIERTAPE those of the Tier-0; a SiteDDMConfig row
may set a site's media explicitly.
"""

from collections import defaultdict
from fnmatch import fnmatchcase

from sites.models import Site

from ..models import DatasetReplica, SiteDDMConfig, SitePreference
from ..policy_choices import Media, PreferenceKind
from .containers import descendants

STORAGE_SUFFIXES = ("DISK", "TAPE")
# seed-grid.json names the Tier-0's storage endpoints TIERDISK and TIERTAPE.
TIER0_STORAGE_PREFIX = "TIER"


def media_of(site, config=None):
    if config is not None and config.media:
        return config.media
    return Media.TAPE if site.name.endswith("TAPE") else Media.DISK


def pattern_matches(pattern, value):
    """The grammar's pattern on one value: `a|b*` any of, `!c` none of, `*` wildcards (case-sensitive)."""
    terms = [term.strip() for term in str(pattern).split("|") if term.strip()]
    wanted = [term for term in terms if not term.startswith("!")]
    unwanted = [term[1:] for term in terms if term.startswith("!")]
    value = value or ""
    if any(fnmatchcase(value, term) for term in unwanted):
        return False
    return not wanted or any(fnmatchcase(value, term) for term in wanted)


class Topology:
    def __init__(self):
        self.sites = list(Site.objects.select_related("cloud").order_by("name"))
        self.by_name = {site.name: site for site in self.sites}
        self.configs = {config.site_id: config for config in SiteDDMConfig.objects.all()}
        self.preferences = defaultdict(list)
        for preference in SitePreference.objects.all():
            self.preferences[preference.site_id].append(preference)
        self._tier0_clouds = {site.cloud.name for site in self.sites if site.tier == 0}

    def media(self, site):
        return media_of(site, self.configs.get(site.pk))

    def paused(self, site):
        config = self.configs.get(site.pk)
        return bool(config and config.paused)

    def is_tier1_endpoint(self, site):
        if site.tier <= 1:
            return True
        if not site.name.endswith(STORAGE_SUFFIXES):
            return False
        return site.name[:-4] in (site.cloud.tier1, TIER0_STORAGE_PREFIX)

    def cloud_names(self, limited=(), *, include_tier0=False):
        """The clouds a rule targets: those it names, else every cloud (without the Tier-0's unless asked)."""
        names = sorted({site.cloud.name for site in self.sites})
        if limited:
            return [name for name in names if name in limited]
        return [name for name in names if include_tier0 or name not in self._tier0_clouds]

    def tier1_endpoint(self, cloud, media):
        """The cloud's Tier-1 endpoint of that media: the Tier-1 site itself first, then by name; None if none."""
        endpoints = [site for site in self.sites if site.cloud.name == cloud and self.is_tier1_endpoint(site)]
        if media != Media.ANY:
            endpoints = [site for site in endpoints if self.media(site) == media]
        endpoints.sort(key=lambda site: (site.name != site.cloud.tier1, site.name))
        return endpoints[0] if endpoints else None

    def tier2s(self, cloud, media=Media.ANY):
        found = [site for site in self.sites if site.cloud.name == cloud and not self.is_tier1_endpoint(site)]
        return [site for site in found if media == Media.ANY or self.media(site) == media]

    def wants(self, site, dataset):
        """True: the site's preferences ask for this dataset; None: it has none (takes anything);
        False: it prefers other data."""
        preferences = self.preferences.get(site.pk)
        if not preferences:
            return None
        return any(_preference_matches(preference, dataset) for preference in preferences)

    def home_cloud(self, dataset):
        """The cloud where the dataset was produced: that of its first primary replica (or of its members'
        for a container); None while it has none."""
        ids = [dataset.pk, *descendants([dataset.pk])] if dataset.kind == "container" else [dataset.pk]
        first = (
            DatasetReplica.objects.filter(dataset_id__in=ids, secondary=False)
            .order_by("created_at", "id")
            .values_list("site__cloud__name", flat=True)
            .first()
        )
        return first


def _preference_matches(preference, dataset):
    value = {PreferenceKind.CATEGORY: dataset.category, PreferenceKind.FORMAT: dataset.format,
             PreferenceKind.DATASET: dataset.name}[preference.kind]  # fmt: skip
    return pattern_matches(preference.pattern, value)
