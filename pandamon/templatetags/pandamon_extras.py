from django import template

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
