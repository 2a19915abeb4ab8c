"""dq2: list, download, upload and manage datasets of the PanDA monitor's DQ2 catalog.

    dq2 ls 'user.alice.*'            datasets matching a pattern
    dq2 ls -f DATASET                its files (lfn, guid, size, ad:checksum)
    dq2 ls -r DATASET                the sites holding it, complete or not
    dq2 get DATASET [-s SITE]        download it (verified, resumable)
    dq2 put -L DIR DATASET -s SITE   upload a directory as a user dataset
    dq2 subscribe DATASET SITE       have the site hold the dataset (transfers are queued for it)
    dq2 subscriptions --site SITE    subscriptions and how far they are; also transfers, callbacks

Every failure is one line, `dq2: error: ...`, on stderr: exit status 2 for bad
arguments or local input, 1 for a refusal by the server or a failed transfer.
"""

import argparse
import os
import sys

from client import __version__, commands, config
from client.api import Catalog
from client.cli import OneLineParser, fail
from client.errors import DQ2Error, UsageError

EPILOG = (
    "Server: --server or $PANDA_URL (default http://127.0.0.1:8000). Token: --token, $PANDA_TOKEN, "
    "or the file ~/.panda/token ($PANDA_TOKEN_FILE). See docs/dq2.md."
)


def _connection_options(parser: argparse.ArgumentParser, top: bool) -> None:
    # The same options after the subcommand too; SUPPRESS keeps a subcommand from
    # overwriting a value given before it with its own default.
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--server", metavar="URL", default=default, help="catalog server (default $PANDA_URL)")
    parser.add_argument("--token", default=default, help="API token (default $PANDA_TOKEN or ~/.panda/token)")
    parser.add_argument("--retries", type=int, metavar="N", default=4 if top else argparse.SUPPRESS,
                        help="tries of a read on a server or connection error (default 4)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dq2", description="Client of the PanDA monitor's DQ2 data catalog.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"dq2 {__version__}")
    _connection_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    _add_ls(sub)
    _add_get(sub)
    _add_put(sub)
    _add_catalog_commands(sub)
    _add_data_flow_commands(sub)
    return parser


def _command(sub, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG)
    _connection_options(parser, top=False)
    parser.set_defaults(handler=handler)
    return parser


def _add_ls(sub) -> None:
    parser = _command(sub, "ls", commands.ls, "list datasets by pattern, or one dataset's files or replicas")
    parser.add_argument("name", metavar="PATTERN|DATASET", help="dataset name or pattern with * wildcards")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("-f", "--files", action="store_true", help="list the dataset's files")
    what.add_argument("-r", "--replicas", action="store_true", help="list the sites holding the dataset")
    what.add_argument("-l", "--long", action="store_true", help="datasets with state, version, files, bytes")
    parser.add_argument("--version", dest="version", type=_positive, metavar="N", help="with -f: this version")


def _add_get(sub) -> None:
    parser = _command(sub, "get", commands.get, "download a dataset's files into DESTDIR/DATASET/")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("-s", "--site", help="read from this site first (others if it fails)")
    parser.add_argument("-n", type=int, metavar="N", help="download only the first N files")
    parser.add_argument("-d", "--destdir", default=".", metavar="DIR", help="where to put DATASET/ (default: .)")
    parser.add_argument("--version", dest="version", type=_positive, metavar="N", help="this version's files")


def _add_put(sub) -> None:
    parser = _command(sub, "put", commands.put, "upload a directory's files as (a new version of) a user dataset")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("-L", "--local-dir", required=True, metavar="DIR", help="the directory to upload")
    parser.add_argument("-s", "--site", required=True, help="the site whose storage gets the files")
    parser.add_argument("--new-version", action="store_true", help="register a new version even if no file is new")


def _add_catalog_commands(sub) -> None:
    parser = _command(sub, "register", commands.register, "register a new dataset (optionally with files)")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("-f", "--files", metavar="FILES.json", help="JSON list of {lfn, fsize, adler32, guid?}")
    parser.add_argument("--kind", choices=["dataset", "container", "datablock"], default="dataset")
    parser = _command(sub, "register-location", commands.register_location, "register a site as holding a dataset")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("site", metavar="SITE")
    parser.add_argument("--complete", action="store_true", help="the site holds every file (registers them)")
    for name, handler, text in (
        ("close", commands.close, "close a dataset: its latest version becomes immutable"),
        ("freeze", commands.freeze, "freeze a dataset: no new files or versions, ever"),
        ("erase", commands.erase, "erase a dataset (purged after 24 hours)"),
    ):
        _command(sub, name, handler, text).add_argument("dataset", metavar="DATASET")
    parser = _command(sub, "container-add", commands.container_add, "add datasets to a container")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("datasets", metavar="DATASET", nargs="+")


def _add_data_flow_commands(sub) -> None:
    parser = _command(sub, "subscribe", commands.subscribe, "subscribe a site to a dataset, container or datablock")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("site", metavar="SITE")
    parser.add_argument("--priority", type=int, choices=range(1, 6), default=3, metavar="N",
                        help="1 (lowest) to 5 (highest), default 3")  # fmt: skip
    parser.add_argument("--activity", choices=["user", "production"], default="user", help="default user")
    parser = _command(sub, "subscriptions", commands.subscriptions, "list subscriptions, newest first")
    parser.add_argument("--dataset", metavar="PATTERN", help="dataset name or pattern with * wildcards")
    parser.add_argument("--site", metavar="SITE", help="site name or pattern")
    parser.add_argument("--state", help="active, done, stuck or suspended (| for or, ! for not)")
    parser.add_argument("--owner", metavar="USER", help="who made them")
    _limit_option(parser)
    parser = _command(sub, "unsubscribe", commands.unsubscribe, "delete a subscription (its queued transfers too)")
    parser.add_argument("id", type=_positive, metavar="ID")
    parser = _command(sub, "suspend-subscription", commands.suspend_subscription,
                      "suspend a subscription: the agent leaves it alone")  # fmt: skip
    parser.add_argument("id", type=_positive, metavar="ID")
    parser.add_argument("--reason", help="why (shown with the subscription)")
    parser = _command(sub, "resume-subscription", commands.resume_subscription,
                      "resume a suspended or stuck subscription (failed transfers are queued again)")  # fmt: skip
    parser.add_argument("id", type=_positive, metavar="ID")
    parser = _command(sub, "transfers", commands.transfers, "list transfers, newest first")
    parser.add_argument("--destination", metavar="SITE", help="destination site name or pattern")
    parser.add_argument("--source", metavar="SITE", help="source site of the last attempt")
    parser.add_argument("--state", help="queued, submitted, done or failed (| for or, ! for not)")
    parser.add_argument("--dataset", metavar="PATTERN", help="files of this dataset")
    parser.add_argument("--lfn", metavar="PATTERN", help="file name or pattern")
    _limit_option(parser)
    parser = _command(sub, "callback", commands.callback, "POST to URL once SITE holds every file of DATASET")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("site", metavar="SITE")
    parser.add_argument("url", metavar="URL", help="http:// or https://")
    parser = _command(sub, "callbacks", commands.callbacks, "list your callbacks (operators: everyone's)")
    parser.add_argument("--dataset", metavar="PATTERN")
    parser.add_argument("--site", metavar="SITE")
    parser.add_argument("--state", help="waiting, due, done or failed")
    _limit_option(parser)


def _limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=_positive, default=100, metavar="N", help="show at most N (default 100)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"give a positive number, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(argv)
    except DQ2Error as exc:
        return fail("dq2", str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return fail("dq2", "interrupted", 130)
    except BrokenPipeError:
        # `dq2 ls ... | head`: the reader left; stop quietly, without a second error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a local file problem: disk full, permission denied
        where = f"{exc.filename}: " if exc.filename else ""
        return fail("dq2", f"{where}{exc.strerror or exc}", 1)
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line; DQ2_DEBUG=1 shows the traceback
        if os.environ.get("DQ2_DEBUG"):
            raise
        return fail("dq2", f"internal error: {type(exc).__name__}: {exc} (DQ2_DEBUG=1 shows where)", 1)


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    if not args.command:
        raise UsageError("give a command: ls, get, put, register, register-location, close, freeze, erase, "
                         "container-add, subscribe, subscriptions, unsubscribe, suspend-subscription, "
                         "resume-subscription, transfers, callback, callbacks (see 'dq2 --help')")  # fmt: skip
    if args.retries < 1:
        raise UsageError("--retries must be at least 1")
    catalog = Catalog(config.server_url(args.server), token=config.token(args.token), tries=args.retries)
    return args.handler(catalog, args)


if __name__ == "__main__":
    sys.exit(main())
