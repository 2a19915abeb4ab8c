"""What the command lines (dq2, panda) share: usage errors and failures reported as one line."""

import argparse
import sys

from client.errors import UsageError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (`<prog>: error: ...`) instead of usage + exit."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def fail(prog: str, message: str, code: int) -> int:
    """Print `<prog>: error: <message>` (on one line) on stderr and return the exit code."""
    sys.stdout.flush()
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def parse_filters(pairs: list[str]) -> dict:
    """FIELD=VALUE arguments as query parameters (the portal's filter grammar applies to the values)."""
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"filters are FIELD=VALUE, not {pair!r}")
        params[name] = value
    return params
