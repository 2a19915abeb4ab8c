"""Diagnostic signatures: the variable parts of an error message replaced by placeholders.

Two failures of the same kind rarely have the same diagnostic text: it names the file,
the node, the PandaID, the number of seconds. Replacing those parts with placeholders
gives a signature that identical failures share, so the errors page can count them
together ("stage-out failed: <PATH> on <HOST>: 412 jobs") as BigPanDA's task error
clustering does.

Replacements run in order, from the most specific shape to the least specific, so a
GUID is not taken for three numbers and a hex id, and a path is not cut into numbers.
"""

import functools
import re

PLACEHOLDERS = {
    "url": "<URL>",
    "guid": "<GUID>",
    "quoted": "<Q>",
    "path": "<PATH>",
    "ip": "<IP>",
    "host": "<HOST>",
    "hex": "<HEX>",
    "number": "<N>",
}

_RULES = (
    # scheme://anything-up-to-a-space (a final . or : is punctuation): storage endpoints, pilot URLs
    ("url", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>,;)]*[^\s'\"<>,;).:]", re.IGNORECASE)),
    ("guid", re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)),
    # '...' or "..." (short enough to be a value, not a sentence in quotes)
    ("quoted", re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"")),
    # /a/b or ./a or ~/a; at least one slash after the first segment, or a leading slash and a segment
    ("path", re.compile(r"(?<![\w<])(?:~|\.{1,2})?/[\w.+@%=-]+(?:/[\w.+@%=:-]*)*")),
    ("ip", re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")),
    # host.domain.tld: two dots at least, ending in a word of letters (so file names like a.b.root.1 are spared)
    (
        "host",
        re.compile(
            r"(?<![\w.-])[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+){1,}\.[a-z]{2,6}(?![\w.-]*\w)(?::\d+)?",
            re.IGNORECASE,
        ),
    ),
    # 0xdeadbeef, or a long hex word with a digit and a letter (checksums, object ids)
    ("hex", re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.IGNORECASE)),
    # integers and decimals, but not the digits ending a word (adler32, wn12, md5 stay as they are)
    ("number", re.compile(r"(?:(?<!\w)[-+])?(?<![A-Za-z0-9])\d+(?:\.\d+)?")),
)
_SPACES = re.compile(r"\s+")
MAX_SIGNATURE_LENGTH = 300


@functools.lru_cache(maxsize=16384)
def normalize(diag):
    """The signature of a diagnostic: variable parts replaced, spaces collapsed, lengths bounded.

    Cached: the errors page normalises the same few thousand diagnostics on every view of a window."""
    text = _SPACES.sub(" ", diag or "").strip()
    for kind, pattern in _RULES:
        text = pattern.sub(PLACEHOLDERS[kind], text)
    return text[:MAX_SIGNATURE_LENGTH]
