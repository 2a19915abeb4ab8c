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
