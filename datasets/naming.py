"""Dataset names: the dot-separated fields and the browser category of a name.

`mc11.007216.singlepart_mu18.recon.AOD.v11000303` has the fields series, number,
physics, stage, format and release (seed-grid.json). User datasets are
`user.<name>.*`; PanDA's dispatch and destination blocks end in `_dis<n>` and
`_sub<n>`. Names are limited to a safe character set so they work unquoted in
URLs, shells and storage paths.
"""

import re
from dataclasses import dataclass

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.:+]{0,254}$")
FIELDS = ("series", "number", "physics", "stage", "format", "release")
DISPATCH_SUFFIX = re.compile(r"_dis\d+$")
DESTINATION_SUFFIX = re.compile(r"_sub\d+$")
# Category of a name by its first field, in the order they are tried (seed-grid.json dataset_categories).
SERIES_CATEGORIES = (
    (re.compile(r"^user$", re.IGNORECASE), "user"),
    (re.compile(r"^t0", re.IGNORECASE), "T0"),
    (re.compile(r"^cond", re.IGNORECASE), "conditions"),
    (re.compile(r"^csc", re.IGNORECASE), "csc"),
    (re.compile(r"^ctb", re.IGNORECASE), "ctb"),
    (re.compile(r"^dc2", re.IGNORECASE), "dc2"),
    (re.compile(r"^larg", re.IGNORECASE), "larg"),
    (re.compile(r"^mc\d*$", re.IGNORECASE), "mc"),
    (re.compile(r"^rome", re.IGNORECASE), "rome"),
    (re.compile(r"^(testpanda|panda)$", re.IGNORECASE), "testpanda"),
    (re.compile(r"^tile", re.IGNORECASE), "tile"),
    (re.compile(r"^(valid|test|ideal)", re.IGNORECASE), "validation"),
)
CATEGORIES = {
    "T0": "Tier 0 test",
    "conditions": "Datasets for conditions data files",
    "csc": "Computing system commissioning production",
    "ctb": "Combined testbeam production",
    "dc2": "Data Challenge 2 production",
    "destination": "Panda destination sub-blocks",
    "dispatch": "Panda dispatch blocks",
    "larg": "LAr commissioning",
    "mc": "MC validation production",
    "other": "Everything else",
    "rome": "Rome physics workshop production",
    "testpanda": "Panda test datasets",
    "tile": "Tilecal commissioning",
    "user": "User datasets",
    "validation": "Validation samples (test/ideal* etc)",
}


@dataclass(frozen=True)
class ParsedName:
    series: str = ""
    number: str = ""
    physics: str = ""
    stage: str = ""
    format: str = ""
    release: str = ""
    category: str = "other"
    user: str = ""

    def fields(self):
        return {name: getattr(self, name) for name in (*FIELDS, "category")}


def is_valid_name(name):
    return bool(NAME_PATTERN.match(name)) and ".." not in name


def parse(name):
    """Split a dataset name into its fields and classify it; unknown layouts fill what they can."""
    parts = name.split(".")
    values = dict(zip(FIELDS, parts[: len(FIELDS)], strict=False))
    user = parts[1] if len(parts) > 1 and parts[0].lower() == "user" else ""
    return ParsedName(**{key: value[:64] for key, value in values.items()}, category=category_of(name), user=user)


def category_of(name):
    if DISPATCH_SUFFIX.search(name):
        return "dispatch"
    if DESTINATION_SUFFIX.search(name):
        return "destination"
    series = name.split(".", 1)[0]
    for pattern, category in SERIES_CATEGORIES:
        if pattern.match(series):
            return category
    return "other"
