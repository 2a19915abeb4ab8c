"""Where the catalog is and who we are: --server/$PANDA_URL, --token/$PANDA_TOKEN/token file."""

import os
from collections.abc import Mapping
from pathlib import Path

from client.errors import UsageError

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_TOKEN_FILE = "~/.panda/token"


def server_url(option: str | None, env: Mapping[str, str] = os.environ) -> str:
    url = (option or env.get("PANDA_URL") or DEFAULT_SERVER).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the server URL must start with http:// or https://, not {url!r}")
    return url


def token(option: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The API token: --token, else $PANDA_TOKEN, else the token file (none if it does not exist)."""
    if option:
        return _checked(option, "--token")
    if env.get("PANDA_TOKEN"):
        return _checked(env["PANDA_TOKEN"], "$PANDA_TOKEN")
    return _token_from_file(env.get("PANDA_TOKEN_FILE"))


def _checked(value: str, where: str) -> str:
    # Caught here, a pasted token with a line break in the middle is one clear line,
    # not an HTTP library error about header values.
    value = value.strip()
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise UsageError(f"the token from {where} must be one word (no spaces or line breaks)")
    return value


def token_path(env: Mapping[str, str] = os.environ) -> Path:
    """Where the token is kept: $PANDA_TOKEN_FILE, else ~/.panda/token (what `panda login` writes)."""
    return Path(env.get("PANDA_TOKEN_FILE") or DEFAULT_TOKEN_FILE).expanduser()


def _token_from_file(named: str | None) -> str | None:
    """A token file named by $PANDA_TOKEN_FILE must exist: a typo there should not
    silently send requests without credentials."""
    path = token_path({"PANDA_TOKEN_FILE": named} if named else {})
    try:
        text = path.read_text().strip()
        return _checked(text, str(path)) if text else None
    except FileNotFoundError:
        if named:
            raise UsageError(f"token file {path} (from $PANDA_TOKEN_FILE) does not exist") from None
        return None
    except OSError as exc:
        raise UsageError(f"cannot read token file {path}: {exc.strerror}") from exc
