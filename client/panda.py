"""panda: log in to the PanDA monitor and check your quotas.

    panda login -u alice            ask for the password, store an API token in ~/.panda/token
    panda login -u alice --password-stdin    (for scripts: echo "$PW" | panda login ...)
    panda quota [--json]            your quotas and your physics groups': used, soft, hard, resets
    panda logout                    forget the stored token
    panda jobs jobstatus=failed computingsite='BNL*' hours=24    jobs, with the portal's filter grammar
    panda alarms [state=open]       live alarms
    panda site NAME                 a site's settings and the portal's page for it
    panda submit --inDS X --outDS user.<you>.Y [--nFilesPerJob N] [--workDir DIR] -- script.sh '${IN}' '${OUT}'
                                    upload your script (or DIR) and run it over X's files: an analysis task;
                                    the same --outDS again processes only the files that are new
    panda tasks [--status S] [--all]    your tasks (everyone's), newest first
    panda task ID                   one task: status, file counters, jobs by state

Every failure is one line, `panda: error: ...`, on stderr: exit status 2 for bad
arguments, 1 for a refusal by the server.
"""

import argparse
import getpass
import json
import os
import sys

from client import __version__, config, tasks
from client.api import Catalog, quote_name
from client.cli import OneLineParser, fail, parse_filters
from client.errors import DQ2Error, ServerError, UsageError

TOKEN_PATH = "/api/v1/auth/token"
QUOTA_PATH = "/api/v1/quotas/me"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="panda", description="Client of the PanDA monitor (jobs, tasks, quotas).")
    parser.add_argument("--version", action="version", version=f"panda {__version__}")
    parser.add_argument("--server", metavar="URL", help="server (default $PANDA_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", help="API token (default $PANDA_TOKEN or ~/.panda/token)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    login = sub.add_parser("login", help="get an API token for your account and store it")
    login.add_argument("-u", "--username", required=True)
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.set_defaults(handler=_login)
    sub.add_parser("logout", help="delete the stored token").set_defaults(handler=_logout)
    quota = sub.add_parser("quota", help="your quotas: used, soft and hard limits, when they reset")
    quota.add_argument("--json", action="store_true", help="print the server's JSON answer")
    quota.set_defaults(handler=_quota)
    jobs = sub.add_parser("jobs", help="jobs matching filters (field=value, * | ! as on the portal)")
    jobs.add_argument("filters", nargs="*", metavar="FIELD=VALUE")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(handler=_jobs)
    alarms = sub.add_parser("alarms", help="alarms (default: those not resolved)")
    alarms.add_argument("filters", nargs="*", metavar="FIELD=VALUE")
    alarms.add_argument("--json", action="store_true")
    alarms.set_defaults(handler=_alarms)
    site = sub.add_parser("site", help="one site")
    site.add_argument("name")
    site.add_argument("--json", action="store_true")
    site.set_defaults(handler=_site)
    tasks.add_commands(sub)
    return parser


def _login(server, args) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    if not password:
        raise UsageError("no password given")
    answer = Catalog(server, tries=1).post(TOKEN_PATH, {"username": args.username, "password": password})
    path = config.token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Created private: the token is as good as the password.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(answer["token"] + "\n")
    print(f"logged in as {args.username}; token stored in {path}")
    return 0


def _logout(server, args) -> int:
    path = config.token_path()
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


def _client(server, args) -> Catalog:
    return Catalog(server, token=config.token(args.token))


def _print_rows(rows: list, columns: tuple, as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        print("  ".join(str(row.get(column) if row.get(column) is not None else "-") for column in columns))


def _jobs(server, args) -> int:
    params = {**parse_filters(args.filters), "limit": args.limit}
    rows = _client(server, args).get("/api/v1/jobs/", params)["results"]
    _print_rows(rows, ("pandaid", "status", "computing_site", "prod_user_name", "job_name", "modification_time"),
                args.json)  # fmt: skip
    return 0


def _alarms(server, args) -> int:
    params = parse_filters(args.filters) or {"state": "!resolved"}
    rows = _client(server, args).get("/api/v1/alarms/", params)["results"]
    _print_rows(rows, ("id", "severity", "state", "category", "subject_kind", "subject", "count", "message"),
                args.json)  # fmt: skip
    return 0


def _site(server, args) -> int:
    site = _client(server, args).get(f"/api/v1/sites/{quote_name(args.name)}/")
    if args.json:
        print(json.dumps(site, indent=1))
        return 0
    for name, value in site.items():
        print(f"{name:<22} {value}")
    print(f"{'page':<22} {server}/sites/{quote_name(args.name)}/")
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
            raise UsageError(
                "give a command: login, logout, quota, jobs, alarms, site, submit, tasks, task (see 'panda --help')"
            )
        return args.handler(config.server_url(args.server), args)
    except ServerError as exc:
        return fail("panda", str(exc), 1)
    except DQ2Error as exc:
        return fail("panda", str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return fail("panda", "interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
