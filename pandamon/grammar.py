"""The one filter grammar of every list (pages and API), as django-filter filters.

A value is one or more terms separated by `|`:

- `running`        equals
- `BNL*`, `*_dis*` `*` wildcards (startswith / endswith / contains; no regex reaches the database)
- `!failed`        not; negated terms are ANDed, the others ORed: `a|b|!c` is (a or b) and not c
- `Not specified`  empty or NULL
- `10:20`          an inclusive range (numbers and dates)

Each filter parses its value in its form field, so a bad value is a form error that
pages and the API turn into a 400 naming the parameter. Everything becomes ORM `Q`
objects: no SQL is built from strings.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import django_filters as filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .errors import InvalidInput

NOT_SPECIFIED = "Not specified"
TERM_CHARACTERS = re.compile(r"^[\w .:+@/=,#()\-*]+$")
TERM_CHARACTERS_TEXT = "letters, digits, spaces, _ . : + @ / = , # ( ) - and * wildcards"
MAX_TERMS = 50


@dataclass(frozen=True)
class Term:
    value: object
    negated: bool = False
    upper: object = None  # set for a range term

    @property
    def is_range(self):
        return self.upper is not None


@dataclass(frozen=True)
class Pattern:
    """A parsed filter value: terms to OR together and terms to exclude."""

    terms: tuple = field(default_factory=tuple)

    def to_q(self, lookup, term_q):
        included = [term_q(lookup, term) for term in self.terms if not term.negated]
        excluded = [term_q(lookup, term) for term in self.terms if term.negated]
        condition = Q()
        if included:
            condition = included[0]
            for other in included[1:]:
                condition |= other
        for other in excluded:
            condition &= ~other
        return condition


def invalid(message):
    """A form error whose text may quote the user's value: passed as a parameter, so a `%` in
    it cannot break the `message % params` formatting django-filter and DRF apply."""
    return forms.ValidationError("%(message)s", params={"message": message})


def split_terms(raw):
    """`a|!b` -> [("a", False), ("b", True)]; raises ValidationError on empty or too many terms."""
    parts = [part.strip() for part in raw.split("|")]
    if len(parts) > MAX_TERMS:
        raise invalid(f"at most {MAX_TERMS} alternatives separated by |")
    terms = []
    for part in parts:
        negated = part.startswith("!")
        text = part[1:].strip() if negated else part
        if not text:
            raise invalid(f"empty term in {raw!r}")
        terms.append((text, negated))
    return terms


def wildcard_q(lookup, text):
    """`a*b*c` as startswith/contains/endswith lookups (index-friendly for prefixes)."""
    parts = text.split("*")
    if len(parts) == 1:
        return Q(**{lookup: text})
    condition = Q()
    if parts[0]:
        condition &= Q(**{f"{lookup}__startswith": parts[0]})
    if parts[-1]:
        condition &= Q(**{f"{lookup}__endswith": parts[-1]})
    for middle in parts[1:-1]:
        if middle:
            condition &= Q(**{f"{lookup}__contains": middle})
    return condition


def not_specified_q(lookup):
    return Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: ""})


# ---------------------------------------------------------------- form fields (parse and validate)


class PatternField(forms.CharField):
    """Parses a value into a Pattern; subclasses turn each `|`-separated term into a Term (or refuse it)."""

    def clean(self, value):
        value = super().clean(value)
        if value in (None, ""):
            return None
        return Pattern(tuple(self.term(text, negated) for text, negated in split_terms(value)))

    def term(self, text, negated):
        raise NotImplementedError


class TextPatternField(PatternField):
    """Terms of text; each may hold only the characters `allowed` matches (described by `allowed_text`)."""

    def __init__(self, *args, allowed=TERM_CHARACTERS, allowed_text=TERM_CHARACTERS_TEXT, **kwargs):
        self.allowed, self.allowed_text = allowed, allowed_text
        super().__init__(*args, **kwargs)

    def term(self, text, negated):
        if text != NOT_SPECIFIED and not self.allowed.match(text):
            raise invalid(f"{text[:60]!r} is not a valid pattern: use only {self.allowed_text}")
        return Term(text, negated)


class ChoicePatternField(PatternField):
    """Terms must name a choice; wildcards expand over the choices (`*ing`), so the database sees an IN list."""

    def __init__(self, *args, choices=(), **kwargs):
        self.valid = [str(value) for value, _ in choices]
        super().__init__(*args, **kwargs)

    def term(self, text, negated):
        matches = [choice for choice in self.valid if _wildcard_match(text, choice)]
        if not matches:
            raise invalid(f"{text[:60]!r} is not one of: {', '.join(self.valid)}")
        return Term(tuple(matches), negated)


def _wildcard_match(pattern, value):
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), value) is not None


class IntPatternField(PatternField):
    def term(self, text, negated):
        if text == NOT_SPECIFIED:
            return Term(None, negated)
        low, sep, high = text.partition(":")
        try:
            return Term(int(low), negated, int(high) if sep else None)
        except ValueError:
            raise invalid(f"{text[:60]!r} is not an integer or a range like 10:20") from None


# ---------------------------------------------------------------- filters


class PatternFilter(filters.Filter):
    """A filter whose form field parses the grammar into a Pattern; subclasses say what one term matches."""

    def filter(self, qs, value):
        if value is None:
            return qs
        return qs.filter(value.to_q(self.field_name, self.term_q))

    @staticmethod
    def term_q(lookup, term):
        raise NotImplementedError


class TextFilter(PatternFilter):
    """A text column: equals, `*` wildcards, `|`, `!`, `Not specified`."""

    field_class = TextPatternField

    @staticmethod
    def term_q(lookup, term):
        if term.value == NOT_SPECIFIED:
            return not_specified_q(lookup)
        return wildcard_q(lookup, term.value)


class ChoiceFilter(PatternFilter):
    """A column with fixed choices (states, kinds); wildcards allowed, unknown values refused."""

    field_class = ChoicePatternField

    @staticmethod
    def term_q(lookup, term):
        return Q(**{f"{lookup}__in": term.value})


class IntFilter(PatternFilter):
    """An integer column: `7`, `7|8`, `!7`, `10:20`."""

    field_class = IntPatternField

    @staticmethod
    def term_q(lookup, term):
        if term.value is None:
            return Q(**{f"{lookup}__isnull": True})
        if term.is_range:
            return Q(**{f"{lookup}__range": (term.value, term.upper)})
        return Q(**{lookup: term.value})


# ---------------------------------------------------------------- the time window


@dataclass(frozen=True)
class Window:
    """The time window of a listing, on one datetime column."""

    field: str
    start: datetime | None
    end: datetime | None
    hours: float | None
    default: bool

    def as_dict(self):
        return {"field": self.field, "from": self.start, "to": self.end, "hours": self.hours, "default": self.default}

    def q(self):
        """The window as a Q on its field: start inclusive, end exclusive."""
        condition = Q()
        if self.start:
            condition &= Q(**{f"{self.field}__gte": self.start})
        if self.end:
            condition &= Q(**{f"{self.field}__lt": self.end})
        return condition


def _moment(raw, name, *, end_of_day=False):
    wrong = invalid(f"{name} must be a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM), got {raw[:40]!r}")
    try:  # parse_* return None for a wrong shape but raise ValueError for an impossible date (2024-13-45)
        day = parse_date(raw)  # a bare day: its start, or for date_to its end (parse_datetime would say 00:00)
        moment = None if day else parse_datetime(raw)
    except ValueError:
        raise wrong from None
    if day:
        moment = datetime.combine(day, datetime.min.time()) + (timedelta(days=1) if end_of_day else timedelta())
    elif moment is None:
        raise wrong
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def parse_window(data, *, field, default_hours, deep):
    """hours= / days= / date_from= / date_to= -> Window; the default applies unless a deep parameter is given."""
    hours, days = data.get("hours"), data.get("days")
    date_from, date_to = data.get("date_from"), data.get("date_to")
    if hours and days:
        raise invalid("give hours or days, not both")
    if (hours or days) and date_from:
        raise invalid("give hours/days or date_from, not both")
    now = timezone.now()
    end = _moment(date_to, "date_to", end_of_day=True) if date_to else None
    if hours or days:
        span = _positive_number(hours, "hours", 24 * 3650) if hours else 24 * _positive_number(days, "days", 3650)
        return Window(field, (end or now) - timedelta(hours=span), end, span, False)
    if date_from:
        start = _moment(date_from, "date_from")
        if end and end <= start:
            raise invalid("date_to must be after date_from")
        return Window(field, start, end, None, False)
    if end or deep or not default_hours:
        return Window(field, None, end, None, False)
    return Window(field, now - timedelta(hours=default_hours), None, default_hours, True)


def window_of(params, *, field, default_hours):
    """The window that a page's own hours= / days= / date_from= / date_to= give (no FilterSet involved);
    InvalidInput (a 400) when they are bad."""
    try:
        return parse_window({name: params.get(name) for name in WINDOW_PARAMS}, field=field,
                            default_hours=default_hours, deep=False)  # fmt: skip
    except forms.ValidationError as error:
        raise InvalidInput(" ".join(error.messages)) from None


def _positive_number(raw, name, maximum):
    try:
        number = float(raw)
    except ValueError:
        raise invalid(f"{name} must be a number, got {raw[:40]!r}") from None
    if not 0 < number <= maximum:
        raise invalid(f"{name} must be greater than 0 and at most {maximum}")
    return number


# ---------------------------------------------------------------- the FilterSet base


# Parameters that are not filters: the window, paging, sorting and output format.
WINDOW_PARAMS = ("hours", "days", "date_from", "date_to")
RESERVED_PARAMS = frozenset({*WINDOW_PARAMS, "json", "after", "limit", "sortby", "cursor", "response_format", "q"})


def _names_few_rows(value):
    """An id given positively (no wildcard, no negation) selects few rows, whatever their age."""
    return bool(value) and "*" not in value and "!" not in value


class GrammarForm(forms.Form):
    """Refuses unknown parameters (a typo must not silently widen a selection) and parses the window."""

    def clean(self):
        cleaned = super().clean()
        filterset = self.filterset_class
        unknown = sorted(set(self.data) - set(self.fields) - RESERVED_PARAMS - set(filterset.extra_params))
        if unknown:
            raise invalid(
                f"unknown parameter {', '.join(unknown)}; this list filters on {', '.join(sorted(self.fields))}"
            )
        if filterset.window_field:
            deep = any(_names_few_rows(self.data.get(name)) for name in filterset.deep_params)
            window_data = {name: self.data.get(name) for name in WINDOW_PARAMS}
            self.window = parse_window(
                window_data, field=filterset.window_field, default_hours=filterset.default_hours, deep=deep
            )
        else:
            self.window = None
        return cleaned


class GrammarFilterSet(filters.FilterSet):
    """Base of every list's FilterSet. Subclasses set:

    window_field   the datetime column hours/days/date_from/date_to apply to (None: no window)
    default_hours  the window when none is given (None: unbounded)
    deep_params    filters that name few rows (an id), so the default window is lifted, as BigPanDA's "deep query"
    facet_fields   filters whose value counts the attribute summary shows
    sort_keys      sortby value -> ORM fields, the last one unique (keyset pagination needs a total order)
    default_sort   the sortby used when none is given
    extra_params   page-specific parameters the form accepts without filtering on them
    """

    window_field = None
    default_hours = None
    deep_params = ()
    facet_fields = ()
    sort_keys = {}
    default_sort = None
    extra_params = ()

    def get_form_class(self):
        form_class = super().get_form_class()
        return type(form_class.__name__, (GrammarForm, form_class), {"filterset_class": type(self)})

    @property
    def window(self):
        return getattr(self.form, "window", None)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return queryset.filter(self.window_q()) if self.window else queryset

    def window_q(self):
        """The window as a Q on the selection (a page may widen it: rows in a live state whatever their age)."""
        return self.window.q()

    def facet_lookups(self):
        """[(parameter name, ORM lookup)] of the attribute summary."""
        return [(name, self.filters[name].field_name) for name in self.facet_fields]
