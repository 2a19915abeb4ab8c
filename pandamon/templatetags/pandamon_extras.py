from datetime import timedelta

from django import template
from django.utils import timezone

register = template.Library()


@register.filter
def get_item(mapping, key):
    """Look a key up in a dict from a template: {{ counts|get_item:state }}."""
    if not mapping:
        return None
    return mapping.get(key)


@register.filter
def duration(value):
    """A timedelta as a short human duration: '850 ms', '14 s', '3 min 5 s', '2 h 10 min', '3 d 4 h'."""
    if value is None:
        return ""
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.simple_tag(takes_context=True)
def query_with(context, name, value):
    """This page's query string with `name=value` set (and the page cursor dropped): a facet link."""
    params = context["request"].GET.copy()
    params.pop("after", None)
    params.pop("json", None)
    params[name] = value
    return "?" + params.urlencode()


@register.simple_tag(takes_context=True)
def query_without(context, *names):
    """This page's query string without `names`: the link that removes a filter chip."""
    params = context["request"].GET.copy()
    for name in ("after", "json", *names):
        params.pop(name, None)
    return "?" + params.urlencode()


@register.filter
def pct(part, whole):
    """part/whole as a whole percentage ('' when whole is 0)."""
    if not whole:
        return ""
    return f"{100 * (part or 0) / whole:.0f}"


@register.filter
def make_list_of_ints(text):
    return [int(part) for part in text.split()]


@register.filter
def hours_label(hours):
    hours = int(hours)
    if hours % 24 == 0 and hours >= 48:
        return f"{hours // 24} days"
    return f"{hours} h"


@register.filter
def seconds(value):
    """A number of seconds as a short duration ('' for None)."""
    if value is None:
        return ""
    return duration(timedelta(seconds=value))


@register.filter
def age(moment):
    """How long ago `moment` was, in its largest unit: '40 s', '12 min', '3 h', '2 d'."""
    if moment is None:
        return ""
    seconds = max(0, (timezone.now() - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"
