"""Parsing the flat getJob answer ("NULL" strings, comma-joined lists)."""

import pytest

from pilot.client import ProtocolError
from pilot.heartbeat import parse_commands
from pilot.jobspec import InputFile, parse_job

ANSWER = {
    "StatusCode": 0,
    "PandaID": 123,
    "jobName": "job_123",
    "transformation": "/bin/echo",
    "jobPars": "-n hi",
    "attemptNr": 1,
    "inFiles": "a.root,b.root",
    "GUID": "g1,g2",
    "fsize": "10,0",
    "checksum": "ad:0a1b2c3d,NULL",
    "outFiles": "out1.root,job.log.tgz",
    "logFile": "job.log.tgz",
    "logGUID": "uuid-1",
    "destinationDblock": "d",
    "realDatasets": "r",
    "maxCpuCount": 0,
    "minRamCount": 0,
    "maxDiskCount": 0,
    "maxWalltime": "NULL",
    "coreCount": 1,
    "currentPriority": 1000,
    "prodSourceLabel": "user",
    "taskID": "NULL",
    "loopingCheck": False,
}


def test_parse_full_answer():
    job = parse_job(ANSWER)

    assert (job.panda_id, job.attempt_nr, job.job_name) == (123, 1, "job_123")
    assert job.input_files == [
        InputFile("a.root", "g1", 10, "ad:0a1b2c3d"),
        InputFile("b.root", "g2", None, None),
    ]  # "0" and NULL: unknown
    assert job.output_files == ["out1.root"]  # the log is listed separately
    assert (job.log_file, job.log_guid) == ("job.log.tgz", "uuid-1")
    assert job.max_walltime is None


def test_no_inputs_and_null_log():
    job = parse_job(
        dict(
            ANSWER,
            inFiles="",
            GUID="",
            fsize="",
            checksum="",
            outFiles="",
            logFile="NULL",
            logGUID="NULL",
            maxWalltime="3600",
        )
    )
    assert job.input_files == [] and job.output_files == []
    assert job.log_file is None and job.log_guid is None
    assert job.max_walltime == 3600


def test_short_attribute_lists_leave_values_unknown():
    job = parse_job(dict(ANSWER, GUID="g1", fsize="", checksum=""))
    assert job.input_files[1] == InputFile("b.root")


def test_missing_panda_id_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        parse_job({"StatusCode": 0, "PandaID": "NULL"})


@pytest.mark.parametrize(
    "command, expected",
    [
        ("NULL", []),
        ("", []),
        (None, []),
        ("tobekilled", ["tobekilled"]),
        ("debug,tobekilled", ["debug", "tobekilled"]),
        ("alreadydone", ["alreadydone"]),
    ],
)
def test_parse_commands(command, expected):
    assert parse_commands(command) == expected
