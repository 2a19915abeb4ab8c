"""Pilot error codes and the exception that carries them.

The numbers are pilot3's (PanDAWMS/pilot3, pilot/common/errorcodes.py), which
kept pilot1's numbering because the PanDA server and monitor expect it.
Only the codes this pilot can actually produce are listed. The lost-job
codes (1153, 1155) come from pilot1's list (pilot3's list does not carry
them); pilot3 kept pilot1's numbering, so they mean the same to the server.
"""

import signal

GENERALERROR = 1008
STAGEINFAILED = 1099
STAGEOUTFAILED = 1137
CHMODTRF = 1143
PANDAKILL = 1144
GETMD5MISMATCH = 1145
TRFDOWNLOADFAILURE = 1149
LOOPINGJOB = 1150  # the server knows it as "looping job killed by the pilot"
STAGEINTIMEOUT = 1151  # pilot1's GETTIMEOUT
STAGEOUTTIMEOUT = 1152  # pilot1's PUTTIMEOUT
LOSTJOBNOTFINISHED = 1153  # pilot1's ERR_LOSTJOBNOTFINISHED
LOSTJOBFILETRANSFER = 1155  # pilot1's ERR_LOSTJOBFILETRANSFER
MISSINGOUTPUTFILE = 1165
GETADMISMATCH = 1171
PUTADMISMATCH = 1172
MKDIR = 1199
KILLSIGNAL = 1200
SIGTERM = 1201
SIGQUIT = 1202
SIGSEGV = 1203
SIGXCPU = 1204
SIGBUS = 1206
SIGUSR1 = 1207
SIGINT = 1208
FILEEXISTS = 1221
PAYLOADEXECUTIONFAILURE = 1305
LOGFILECREATIONFAILURE = 1320
PAYLOADSIGSEGV = 1328
MISSINGINPUTFILE = 1331
TRANSFORMNOTFOUND = 1346
UNRECOGNIZEDTRFARGUMENTS = 1349
BADOUTPUTFILENAME = 1371
# This project's own: pilot3 has no job signatures (docs/job-signing.md); above pilot3's highest code (1376).
JOBSIGNATUREINVALID = 1390

MESSAGES = {
    GENERALERROR: "General pilot error, consult batch log",
    STAGEINFAILED: "Failed to stage-in file",
    STAGEOUTFAILED: "Failed to stage-out file",
    CHMODTRF: "Failed to chmod transform",
    PANDAKILL: "job killed by the server",
    GETMD5MISMATCH: "md5sum mismatch on input file",
    TRFDOWNLOADFAILURE: "Transform could not be downloaded",
    LOOPINGJOB: "Looping job killed by pilot",
    STAGEINTIMEOUT: "File transfer timed out during stage-in",
    STAGEOUTTIMEOUT: "File transfer timed out during stage-out",
    LOSTJOBNOTFINISHED: "Lost job was not finished",
    LOSTJOBFILETRANSFER: "Failed to move output files for lost job",
    MISSINGOUTPUTFILE: "Local output file is missing",
    GETADMISMATCH: "adler32 mismatch on input file",
    PUTADMISMATCH: "adler32 mismatch on output file",
    MKDIR: "Failed to create directory",
    KILLSIGNAL: "Job terminated by unknown kill signal",
    SIGTERM: "Job killed by signal: SIGTERM",
    SIGQUIT: "Job killed by signal: SIGQUIT",
    SIGSEGV: "Job killed by signal: SIGSEGV",
    SIGXCPU: "Job killed by signal: SIGXCPU",
    SIGBUS: "Job killed by signal: SIGBUS",
    SIGUSR1: "Job killed by signal: SIGUSR1",
    SIGINT: "Job killed by signal: SIGINT",
    FILEEXISTS: "File already exists",
    PAYLOADEXECUTIONFAILURE: "Failed to execute payload",
    LOGFILECREATIONFAILURE: "Failed during creation of log file",
    PAYLOADSIGSEGV: "SIGSEGV: Invalid memory reference or a segmentation fault",
    MISSINGINPUTFILE: "Input file is missing in storage element",
    TRANSFORMNOTFOUND: "Transform not found",
    UNRECOGNIZEDTRFARGUMENTS: "Unrecognized transform arguments",
    BADOUTPUTFILENAME: "Output file name contains illegal characters",
    JOBSIGNATUREINVALID: "Job refused: its signature is missing or does not match the job description",
}

# pilot3's get_kill_signal_error_code(): the signal that stopped the job.
_SIGNAL_CODES = {
    signal.SIGTERM: SIGTERM,
    signal.SIGQUIT: SIGQUIT,
    signal.SIGSEGV: SIGSEGV,
    signal.SIGXCPU: SIGXCPU,
    signal.SIGBUS: SIGBUS,
    signal.SIGUSR1: SIGUSR1,
    signal.SIGINT: SIGINT,
}

# PanDA's pilotErrorDiag / exeErrorDiag columns hold 500 characters.
MAX_DIAG_LENGTH = 500


def signal_error_code(signum: int) -> int:
    """Pilot error code for a job stopped because the *pilot* got `signum`."""
    return _SIGNAL_CODES.get(signum, KILLSIGNAL)


def payload_signal_error_code(signum: int) -> int:
    """Pilot error code for a payload that died of `signum` on its own."""
    if signum == signal.SIGSEGV:
        return PAYLOADSIGSEGV
    return _SIGNAL_CODES.get(signum, KILLSIGNAL)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def truncate_diag(text: str) -> str:
    """Keep the end of a long diagnostic: the last words usually say why."""
    text = " ".join(text.split())
    if len(text) <= MAX_DIAG_LENGTH:
        return text
    return "..." + text[-(MAX_DIAG_LENGTH - 3) :]


class PilotFailure(Exception):
    """A job-level failure with the pilot error code to report for it."""

    def __init__(self, code: int, diag: str = ""):
        self.code = code
        self.diag = truncate_diag(diag or MESSAGES.get(code, f"pilot error {code}"))
        super().__init__(f"{code}: {self.diag}")
