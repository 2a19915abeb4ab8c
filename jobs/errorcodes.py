"""Error codes of each component, with the meaning the portal shows next to a failed job."""

from typing import NamedTuple

JOB_DISPATCHER = {
    100: "lost heartbeat: no pilot update within the site's heartbeat timeout",
    101: "recovery failed",
    102: "sent timeout: the pilot never reported after taking the job",
    103: "holding timeout: the job's outputs were not processed in time",
    104: "transferring timeout",
    105: "other timeout",
    107: "assigned timeout: the job's input was not transferred to its site in time; reassigned or failed",
    108: "activated timeout: no pilot took the job in time; reassigned or failed",
}
TASK_BUFFER = {
    100: "killed by a person",
    102: "expired",
    103: "aborted",
    105: "reassigned",
    106: "server retry",
    107: "pilot retry",
}
DDM = {
    100: "setupper: input could not be prepared",
    200: "adder: an output file declared by the job is missing from the pilot's report",
}
BROKERAGE = {
    100: "no site satisfies the job's requirements (see the diagnostic)",
    101: "the site the job was assigned to cannot run it (see the diagnostic)",
    102: "held back, not brokered now: e.g. its user or group is at the running-jobs quota (see the diagnostic)",
}
PILOT = {
    1008: "general pilot error",
    1099: "stage-in failed",
    1137: "stage-out failed",
    1144: "killed by the server (kill command)",
    1150: "looping job killed by the pilot",
    1390: (
        "job refused by the pilot, never run: its signature is missing or does not verify (the job description "
        "was changed between server and pilot, or the pilot lacks the signing key; docs/job-signing.md)"
    ),
}

COMPONENTS = {
    "job_dispatcher": JOB_DISPATCHER,
    "task_buffer": TASK_BUFFER,
    "ddm": DDM,
    "brokerage": BROKERAGE,
    "pilot": PILOT,
}


def describe(component, code):
    if not code:
        return ""
    return COMPONENTS.get(component, {}).get(code, "")


class ErrorSource(NamedTuple):
    """One component's error columns on Job, and the /jobs/ parameter that filters on its code."""

    component: str
    code: str
    diag: str
    param: str


# In the order a job's first ("main") error is looked for: the job page, the lists, the errors summary.
ERROR_SOURCES = (
    ErrorSource("pilot", "pilot_error_code", "pilot_error_diag", "piloterrorcode"),
    ErrorSource("exe", "exe_error_code", "exe_error_diag", "exeerrorcode"),
    ErrorSource("job_dispatcher", "job_dispatcher_error_code", "job_dispatcher_error_diag", "jobdispatchererrorcode"),
    ErrorSource("ddm", "ddm_error_code", "ddm_error_diag", "ddmerrorcode"),
    ErrorSource("brokerage", "brokerage_error_code", "brokerage_error_diag", "brokerageerrorcode"),
    ErrorSource("task_buffer", "task_buffer_error_code", "task_buffer_error_diag", "taskbuffererrorcode"),
    ErrorSource("sup", "sup_error_code", "sup_error_diag", "superrorcode"),
    ErrorSource("server", "server_error_code", "server_error_diag", "servererrorcode"),
)
ROW_COLUMNS = tuple(column for source in ERROR_SOURCES for column in (source.code, source.diag))


def first_error(row):
    """The first component that reported an error in a `.values()` row of a job, with its meaning."""
    for component, code, diag, _ in ERROR_SOURCES:
        if row.get(code) or row.get(diag):
            return {"component": component, "code": row.get(code), "diag": row.get(diag),
                    "meaning": describe(component, row.get(code))}  # fmt: skip
    return None
