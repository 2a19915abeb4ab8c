"""The catalog's rule for a file name (LFN): letters, digits, `. _ - + :`, no slash, no leading dot.

An LFN becomes a local file name (dq2 get) and a storage path (dq2 put), so the
client checks it too, not only the server.
"""

import re

LFN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-+:]{0,254}$")


def is_valid_lfn(name: str) -> bool:
    return bool(LFN.match(name))
