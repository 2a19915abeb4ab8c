"""Defining tasks and turning their input into jobs.

A production manager defines a production task (the "Generic Task Request");
a user submits an analysis task (`panda submit --inDS X --outDS user.<me>.Y`).
Either way the input dataset's files are recorded as TaskInput pieces, split into
jobs by the task's rule, and the jobs go through jobs.services.submission like any
others (one path: quotas, priorities and the state log apply). Submitting an
analysis task again with the same output dataset adds only the files not yet
processed ("process only new files"); a task that follows its input gets new files
periodically (add_new_inputs).
"""

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from datasets.choices import DatasetKind
from datasets.models import Dataset, DatasetFile
from datasets.naming import is_valid_name
from datasets.owners import owner_of
from datasets.services import system
from datasets.services.containers import descendants
from jobs.choices import FileType
from jobs.models import JobFile
from jobs.services.submission import submit_jobs
from pandamon import roles
from pandamon.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ServiceError

from ..choices import FINAL_TASK_STATES, InputStatus, TaskStatus, TaskType
from ..models import JobSet, Task, TaskInput
from . import splitting, status

SPEC_FIELDS = (
    "name", "working_group", "vo", "project", "transformation", "trf_version", "sw_release", "job_parameters",
    "input_dataset", "output_dataset", "output_formats", "follow_input", "n_files_per_job", "n_events_per_job",
    "max_size_per_job_mb", "events_per_file", "cpu_per_event", "ram_mb", "walltime_s", "priority",
    "max_attempts", "site", "excluded_sites", "no_looping_check",
)  # fmt: skip
JOBS_PER_CALL = 5000
ANALYSIS_PRIORITY = 1000


def submit_task(*, user, spec, task_type):
    """Define a task (or, for analysis, resubmit one) and make its jobs; returns (task, new PandaIDs)."""
    _check_role(user, task_type)
    spec = _clean(spec, task_type, user)
    with transaction.atomic():
        task = _existing_analysis_task(user, spec) if task_type == TaskType.ANALYSIS else None
        if task is None:
            task = _create(user, spec, task_type)
        pandaids = add_new_inputs(task, actor=user.username, redo_failed=task_type == TaskType.ANALYSIS)
    return task, pandaids


def _check_role(user, task_type):
    if task_type == TaskType.PRODUCTION and not roles.has_role(user, roles.PRODUCTION_MANAGER):
        raise PermissionDenied(f"defining production tasks needs the {roles.PRODUCTION_MANAGER} role")


def _clean(spec, task_type, user):
    if not isinstance(spec, dict):
        raise InvalidInput("give the task as a JSON object")
    unknown = sorted(set(spec) - set(SPEC_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown task field {unknown[0]}; known: {', '.join(SPEC_FIELDS)}")
    clean = {name: spec[name] for name in SPEC_FIELDS if spec.get(name) not in (None, "")}
    for name in ("transformation", "input_dataset", "output_dataset"):
        if not isinstance(clean.get(name), str):
            raise InvalidInput(f"{name}: required")
    if not is_valid_name(clean["output_dataset"]):
        raise InvalidInput(f"output_dataset: {clean['output_dataset']!r} is not a valid dataset name")
    if task_type == TaskType.ANALYSIS and owner_of(clean["output_dataset"]) != user.username:
        raise PermissionDenied(f"an analysis task writes user.{user.username}.* output datasets only")
    rules = [name for name in ("n_files_per_job", "n_events_per_job", "max_size_per_job_mb") if clean.get(name)]
    if len(rules) > 1:
        raise InvalidInput(f"give one splitting rule, not {' and '.join(rules)}")
    for name in ("n_files_per_job", "n_events_per_job", "max_size_per_job_mb", "events_per_file", "ram_mb",
                 "walltime_s", "cpu_per_event", "max_attempts", "priority"):  # fmt: skip
        value = clean.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise InvalidInput(f"{name}: give a non-negative integer")
    if not isinstance(clean.get("excluded_sites", []), list):
        raise InvalidInput("excluded_sites: give a list of site names")
    _check_text_lengths(clean)
    for name in ("follow_input", "no_looping_check"):
        if not isinstance(clean.get(name, False), bool):
            raise InvalidInput(f"{name}: give true or false")
    if clean.get("max_attempts") == 0:
        raise InvalidInput("max_attempts: at least 1")
    if task_type == TaskType.ANALYSIS and clean.get("priority", 1000) > ANALYSIS_PRIORITY:
        raise InvalidInput(f"priority: an analysis task may lower its priority, not raise it above {ANALYSIS_PRIORITY}")
    splitting.check_template(clean.get("job_parameters", ""))
    clean.setdefault("name", clean["output_dataset"] if task_type == TaskType.ANALYSIS else "")
    if not clean["name"]:
        raise InvalidInput("name: required for production tasks")
    return clean


def _check_text_lengths(clean):
    for field in Task._meta.fields:
        limit = getattr(field, "max_length", None)
        value = clean.get(field.name)
        if limit and value is not None and (not isinstance(value, str) or len(value) > limit):
            raise InvalidInput(f"{field.name}: give text of at most {limit} characters")


def _existing_analysis_task(user, spec):
    task = (
        Task.objects.select_for_update().filter(type=TaskType.ANALYSIS, output_dataset=spec["output_dataset"]).first()
    )
    if task is None:
        return None
    if task.owner_id != user.pk:
        raise PermissionDenied(
            f"output dataset {spec['output_dataset']} belongs to task {task.task_id} of {task.owner_name}"
        )
    if task.input_dataset != spec["input_dataset"]:
        raise Conflict(f"task {task.task_id} writes {task.output_dataset} from {task.input_dataset}; "
                       f"a resubmission must read the same input (or choose a new output dataset)")  # fmt: skip
    return task


def _create(user, spec, task_type):
    if Task.objects.filter(name=spec["name"]).exists():
        raise Conflict(f"a task named {spec['name']} exists already")
    label = "managed" if task_type == TaskType.PRODUCTION else "user"
    try:
        with transaction.atomic():
            task = Task.objects.create(type=task_type, owner=user, owner_name=user.username,
                                       prod_source_label=label, **spec)  # fmt: skip
    except IntegrityError:  # the same name submitted at the same moment by another call
        raise Conflict(f"a task named {spec['name']} exists already") from None
    status.record(task, "", TaskStatus.DEFINED, actor=user.username, reason="submitted")
    return task


def add_new_inputs(task, *, actor, redo_failed=False):
    """Make jobs for the input files the task has not seen yet — and, with `redo_failed` (a user's
    resubmission), for its pieces that failed for good. Returns the new PandaIDs."""
    if task.status in (TaskStatus.ABORTED, TaskStatus.BROKEN):
        raise Conflict(f"task {task.task_id} is {task.status}; it takes no new input")
    files = _new_input_files(task)
    new = splitting.pieces_of([(lfn, size, events) for lfn, size, events, _ in files],
                              n_events_per_job=task.n_events_per_job, events_per_file=task.events_per_file)  # fmt: skip
    redo = list(TaskInput.objects.filter(task=task, status=InputStatus.FAILED)) if redo_failed else []
    if not new and not redo:
        if not task.files_total:
            raise InvalidInput(f"input {task.input_dataset} has no files to process")
        return []
    dataset_of = {lfn: name for lfn, _, _, name in files} | _datasets_of(redo)
    pieces = [splitting.Piece(r.lfn, r.fsize, r.first_event, r.n_events) for r in redo] + new
    groups = splitting.split(pieces, n_files_per_job=task.n_files_per_job, n_events_per_job=task.n_events_per_job,
                             max_size_per_job_mb=task.max_size_per_job_mb)  # fmt: skip
    pandaids = _submit(task, groups, dataset_of)
    _record_pieces(task, groups, pandaids, {(r.lfn, r.first_event): r for r in redo})
    if task.status in FINAL_TASK_STATES:
        system.reopen_container(task.output_dataset)
    reason = f"{len(pandaids)} job(s) for {len(new)} new and {len(redo)} failed input piece(s)"
    if task.status == TaskStatus.DEFINED:
        status.change(task, TaskStatus.READY, actor=actor, reason=reason)
    elif task.status in FINAL_TASK_STATES:
        status.change(task, TaskStatus.RUNNING, actor=actor, reason=reason)
    return pandaids


def _datasets_of(pieces):
    """The input dataset each earlier piece's file was read from (its last job says)."""
    rows = JobFile.objects.filter(job_id__in={p.job_id for p in pieces}, lfn__in={p.lfn for p in pieces},
                                  type=FileType.INPUT).values_list("lfn", "dataset")  # fmt: skip
    return dict(rows)


def _new_input_files(task):
    """[(lfn, fsize, events, dataset name)] of the input's files not yet recorded, in name order."""
    dataset = Dataset.objects.filter(name=task.input_dataset, erased_at__isnull=True).first()
    if dataset is None:
        raise NotFound(f"no dataset named {task.input_dataset}")
    ids = [dataset.pk]
    if dataset.kind == DatasetKind.CONTAINER:
        ids = list(descendants([dataset.pk]))
    seen = TaskInput.objects.filter(task=task).values("lfn")
    rows = (
        DatasetFile.objects.filter(dataset_id__in=ids, dataset__erased_at__isnull=True)
        .exclude(dataset__kind=DatasetKind.CONTAINER)
        .exclude(file__lfn__in=seen)
        .order_by("file__lfn")
        .values_list("file__lfn", "file__fsize", "file__events", "dataset__name")
    )
    unique = {}
    for lfn, size, events, name in rows:
        unique.setdefault(lfn, (lfn, size, events, name))
    return list(unique.values())


def _submit(task, groups, dataset_of):
    serial = (JobSet.objects.filter(task=task).aggregate(n=Sum("n_jobs"))["n"] or 0) + 1
    jobset = JobSet.objects.create(task=task, n_jobs=len(groups))
    specs = [_job_spec(task, jobset, serial + index, group, dataset_of) for index, group in enumerate(groups)]
    pandaids = []
    for start in range(0, len(specs), JOBS_PER_CALL):
        pandaids += submit_jobs(submitter=task.owner, specs=specs[start : start + JOBS_PER_CALL])
    return pandaids


def _job_spec(task, jobset, serial, group, dataset_of):
    formats = [f for f in task.output_formats.split(".") if f] or ["root"]
    stem = f"{task.output_dataset[:200]}"
    outputs = [f"{stem}.{fmt}._{serial:06d}.root" for fmt in formats]
    first = group[0]
    spec = {
        "job_name": f"{task.name[:230]}._{serial:06d}", "transformation": task.transformation,
        "job_parameters": splitting.expand(task.job_parameters, inputs=[p.lfn for p in group], outputs=outputs,
                                           serial=serial, first_event=first.first_event,
                                           n_events=first.n_events if task.n_events_per_job else None),
        "prod_source_label": task.prod_source_label, "task_id": task.task_id, "jobset_id": jobset.pk,
        "job_definition_id": jobset.pk, "priority": task.priority, "min_ram_count": task.ram_mb,
        "max_walltime": task.walltime_s, "max_attempt": task.max_attempts, "sw_release": task.sw_release,
        "working_group": task.working_group, "vo": task.vo, "computing_site": task.site or None,
        "input_files": [{"lfn": lfn, "dataset": dataset_of[lfn]} for lfn in dict.fromkeys(p.lfn for p in group)],
        "output_files": [{"lfn": lfn, "dataset": task.output_dataset} for lfn in outputs],
        "log_dataset": task.output_dataset, "log_file": f"{stem}.log._{serial:06d}.tgz",
        # PanDA's specialHandling flag: getJob then tells the pilot loopingCheck=False (jobs/protocol.py).
        "special_handling": "lc" if task.no_looping_check else "",
    }  # fmt: skip
    return spec


def _record_pieces(task, groups, pandaids, earlier):
    """Note which job holds each piece: new pieces are recorded, failed ones given to their new job."""
    new_rows = []
    for group, pandaid in zip(groups, pandaids, strict=True):
        for piece in group:
            row = earlier.get((piece.lfn, piece.first_event))
            if row is not None:
                TaskInput.objects.filter(pk=row.pk).update(status=InputStatus.ASSIGNED, job_id=pandaid,
                                                           attempts=F("attempts") + 1)  # fmt: skip
                continue
            new_rows.append(TaskInput(task=task, lfn=piece.lfn, fsize=piece.fsize, first_event=piece.first_event,
                                      n_events=piece.n_events, status=InputStatus.ASSIGNED, job_id=pandaid,
                                      attempts=1))  # fmt: skip
    TaskInput.objects.bulk_create(new_rows, batch_size=2000)
    events = sum(row.n_events or 0 for row in new_rows)
    Task.objects.filter(pk=task.pk).update(
        files_total=F("files_total") + len(new_rows), events_total=F("events_total") + events,
        files_failed=F("files_failed") - len(earlier), modified_at=timezone.now(),
    )  # fmt: skip
    task.files_total += len(new_rows)
    task.events_total += events
    task.files_failed -= len(earlier)


def follow_inputs(*, batch=100):
    """Tasks marked to follow their input get jobs for its new files; returns counts."""
    counts = {"tasks": 0, "jobs": 0}
    following = Task.objects.filter(follow_input=True, status__in=_FOLLOWING_STATES).values_list("pk", flat=True)
    for pk in list(following[:batch]):
        with transaction.atomic():
            task = Task.objects.select_for_update().get(pk=pk)
            try:
                counts["jobs"] += len(add_new_inputs(task, actor="follow-input"))
            except ServiceError as error:  # one task's input gone must not stop the others
                Task.objects.filter(pk=pk).update(status_reason=f"following its input: {error.message}"[:500])
                counts["refused"] = counts.get("refused", 0) + 1
                continue
            counts["tasks"] += 1
    return counts


_FOLLOWING_STATES = (TaskStatus.READY, TaskStatus.RUNNING, TaskStatus.DONE)
