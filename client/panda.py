"""panda: log in to the PanDA monitor and check your quotas.

    panda login -u alice            ask for the password, store an API token in ~/.panda/token
    panda login -u alice --password-stdin    (for scripts: echo "$PW" | panda login ...)
    panda quota [--json]            your quotas and your physics groups': used, soft, hard, resets
    panda logout                    forget the stored token

Every failure is one line, `panda: error: ...`, on stderr: exit status 2 for bad
arguments, 1 for a refusal by the server.
"""

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from client import __version__, config
from client.api import Catalog
from client.errors import DQ2Error, ServerError, UsageError

TOKEN_PATH = "/api/v1/auth/token"
QUOTA_PATH = "/api/v1/quotas/me"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="panda", description="Client of the PanDA monitor (jobs, quotas).")
    parser.add_argument("--version", action="version", version=f"panda {__version__}")
    parser.add_argument("--server", metavar="URL", help="server (default $PANDA_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", help="API token (default $PANDA_TOKEN or ~/.panda/token)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    login = sub.add_parser("login", help="get an API token for your account and store it")
    login.add_argument("-u", "--username", required=True)
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.set_defaults(handler=_login)
    sub.add_parser("logout", help="delete the stored token").set_defaults(handler=_logout)
    quota = sub.add_parser("quota", help="your quotas: used, soft and hard limits, when they reset")
    quota.add_argument("--json", action="store_true", help="print the server's JSON answer")
    quota.set_defaults(handler=_quota)
    return parser


def token_file() -> Path:
    return Path(os.environ.get("PANDA_TOKEN_FILE") or config.DEFAULT_TOKEN_FILE).expanduser()


def _login(server, args) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    if not password:
        raise UsageError("no password given")
    answer = Catalog(server, tries=1).post(TOKEN_PATH, {"username": args.username, "password": password})
    path = token_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created private: the token is as good as the password.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(answer["token"] + "\n")
    print(f"logged in as {args.username}; token stored in {path}")
    return 0


def _logout(server, args) -> int:
    path = token_file()
    if path.exists():
        path.unlink()
        print(f"removed {path}")
    else:
        print("no stored token")
    return 0


def _quota(server, args) -> int:
    token = config.token(args.token)
    if not token:
        raise UsageError("not logged in: run 'panda login -u <you>' or give --token")
    answer = Catalog(server, token=token).get(QUOTA_PATH)
    if args.json:
        print(json.dumps(answer, indent=1))
        return 0
    for account in answer["accounts"]:
        print(f"{account['account']['kind']} {account['account']['name']}")
        for line in account["quotas"]:
            print("  " + _quota_line(line))
    return 0


def _quota_line(line: dict) -> str:
    limits = f"soft {_limit(line['soft'])}, hard {_limit(line['hard'])}"
    resets = f"; resets {line['resets_at'][:16].replace('T', ' ')} UTC" if line.get("resets_at") else ""
    return f"{line['resource']:<15} {line['used']:>10,} used  ({limits}; from {line['source']}{resets})"


def _limit(value) -> str:
    return "none" if value is None else f"{value:,}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0)
        if not args.command:
            raise UsageError("give a command: login, logout, quota (see 'panda --help')")
        return args.handler(config.server_url(args.server), args)
    except ServerError as exc:
        return _fail(str(exc), 1)
    except DQ2Error as exc:
        return _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int) -> int:
    print(f"panda: error: {' '.join(message.split())}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
