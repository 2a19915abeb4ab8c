"""What dq2 raises: each error carries its exit code and one line for the user."""


class DQ2Error(Exception):
    """A failure to report as `dq2: error: <message>`."""

    exit_code = 1


class UsageError(DQ2Error):
    """Bad arguments or bad local input: nothing was asked of the server."""

    exit_code = 2


class ServerError(DQ2Error):
    """The catalog refused or failed a call; the message is the server's own."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NotFound(ServerError):
    """404: the dataset, file or site does not exist."""


class ConnectionProblem(DQ2Error):
    """The server could not be reached (after retrying, where that is safe)."""


class StorageError(DQ2Error):
    """Reading or writing a site's storage failed.

    transient: worth another try at the same place (a broken connection, a 5xx),
    as opposed to a missing file or a refusal.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class TransferError(DQ2Error):
    """Some files could not be downloaded or uploaded."""
