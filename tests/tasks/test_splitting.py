"""Splitting a task's input into jobs, and the parameter template (pure functions)."""

import pytest

from pandamon.errors import InvalidInput
from tasks.services.splitting import Piece, check_template, expand, pieces_of, split

FILES = [(f"f{i}.root", 100 * i, 1000) for i in range(1, 6)]


def test_by_files_per_job():
    jobs = split(pieces_of(FILES), n_files_per_job=2)
    assert [[p.lfn for p in job] for job in jobs] == [["f1.root", "f2.root"], ["f3.root", "f4.root"], ["f5.root"]]


def test_events_within_files_give_one_range_per_job_and_never_span_files():
    pieces = pieces_of([("big.root", 10, 10_000), ("small.root", 10, 2500)], n_events_per_job=1000)
    jobs = split(pieces, n_events_per_job=1000)
    assert len(jobs) == 10 + 3
    assert [(j[0].lfn, j[0].first_event, j[0].n_events) for j in jobs[:2]] == [("big.root", 0, 1000),
                                                                                ("big.root", 1000, 1000)]  # fmt: skip
    assert [(j[0].first_event, j[0].n_events) for j in jobs[10:]] == [(0, 1000), (1000, 1000), (2000, 500)]


def test_events_per_file_from_the_task_when_files_do_not_say():
    pieces = pieces_of([("a.root", 1, None)], n_events_per_job=30, events_per_file=100)
    assert [(p.first_event, p.n_events) for p in pieces] == [(0, 30), (30, 30), (60, 30), (90, 10)]
    with pytest.raises(InvalidInput, match="events_per_file"):
        pieces_of([("a.root", 1, None)], n_events_per_job=30)


def test_by_size_packs_files_up_to_the_limit_but_at_least_one():
    mb = 1024 * 1024
    pieces = [Piece("a", 3 * mb), Piece("b", 3 * mb), Piece("c", 5 * mb), Piece("d", 1 * mb)]
    assert [[p.lfn for p in job] for job in split(pieces, max_size_per_job_mb=6)] == [["a", "b"], ["c", "d"]]
    assert [[p.lfn for p in job] for job in split([Piece("huge", 99 * mb)], max_size_per_job_mb=6)] == [["huge"]]


def test_the_template():
    text = expand("-i ${IN} -o ${OUT} --serial ${SN} --skip ${SKIPEVENTS} --first ${FIRSTEVENT} -n ${MAXEVENTS}",
                  inputs=["a", "b"], outputs=["o.root"], serial=7, first_event=2000, n_events=1000)  # fmt: skip
    assert text == "-i a,b -o o.root --serial 000007 --skip 2000 --first 2001 -n 1000"
    assert expand("${MAXEVENTS}", inputs=[], outputs=[], serial=1) == "-1"
    with pytest.raises(InvalidInput, match="NOPE"):
        check_template("run ${IN} ${NOPE}")
