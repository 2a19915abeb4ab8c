"""Server-Timing: every response says how long Django took to produce it.

Benchmarks (bench/catalog.py, later bench/pages.py) read it to report server time
apart from the network and the client; browsers show it in their network panel. For a
streamed response it covers the time to the first byte only.
"""

import time


class ServerTimingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        response["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response
