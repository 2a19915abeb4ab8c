"""Running the same database work from several threads at once, each with its own connection."""

import threading

from django.db import connection


def run_together(work, n):
    """Start `work()` in `n` threads released at the same moment; returns the exceptions they raised."""
    barrier, errors = threading.Barrier(n), []

    def worker():
        try:
            barrier.wait()
            work()
        except Exception as error:  # noqa: BLE001 - handed back to the test, which asserts on them
            errors.append(error)
        finally:
            connection.close()  # each thread's own connection, not left for the test database teardown

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
