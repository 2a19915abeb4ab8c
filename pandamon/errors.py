"""Domain errors raised by services and turned into clear 4xx answers.

Services raise these instead of returning error codes, so the API, the pilot
protocol and the CLI all report the same message for the same refusal.
"""


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message, *, details=None):
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self):
        body = {"error": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidInput(ServiceError):
    status_code = 400


class PermissionDenied(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409
