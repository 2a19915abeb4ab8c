"""JEDI task parameter maps (what panda-client's insertTaskParams sends) to our task spec, and back.

A JEDI map says what to run (transPath, jobParameters), on what (the input template's dataset),
where the results go (the output and log templates' datasets) and how to split (nFilesPerJob, ...).
to_spec() turns it into the fields of tasks.api.TaskSpecSerializer; to_task_params() gives a task
back as such a map (task/get_task_parameters). docs/panda-compat.md has the tables.

Every key is decided: mapped onto a field, ignored because it only labels the task (IGNORED), or
refused with a 400 naming it because this server cannot do what it asks (everything else). Where
the work stays the same but is written down differently (file names, ${IN/T} as a comma list),
the translation says so in `notes`, which the submission answer repeats: nothing differs silently.
"""

import math
import re
from dataclasses import dataclass, field

from pandamon.errors import InvalidInput, PermissionDenied

from .choices import TaskType

# Keys that only describe or label the task: they change nothing about what runs, on which input
# or where, so they are accepted and not kept.
IGNORED = frozenset({
    "taskType",  # a label ("anal", "prod"): prodSourceLabel decides the kind of task
    "processingType",  # an accounting label
    "framework",  # a label
    "campaign",  # a label
    "cliParams",  # the command line that built the map, for display
    "osInfo",  # the submitting machine's OS, for information
    "noEmail",  # this server sends no e-mail
    "reqID",  # the ID of a request in another system
    "sourceURL",  # only read through ${SURL}, which is refused
    "uniqueTaskName",  # task names are unique here anyway
    "respectSplitRule",  # the split rule is always respected
    "skipScout",  # no scout jobs are run here
    "nMaxFilesPerJob",  # a ceiling for JEDI's dynamic splitting; splitting here is static
    "noWaitParent",  # there are no parent tasks here (parent_tid is refused)
})  # fmt: skip

# JEDI key -> our field. TaskSpecSerializer checks the values; its messages name the JEDI key.
FIELDS = {
    "taskName": "name", "vo": "vo", "workingGroup": "working_group", "transPath": "transformation",
    "transUses": "sw_release", "transHome": "trf_version", "site": "site", "taskPriority": "priority",
    "currentPriority": "priority", "nFilesPerJob": "n_files_per_job", "nEventsPerJob": "n_events_per_job",
    "nEventsPerInputFile": "events_per_file", "ramCount": "ram_mb", "walltime": "walltime_s",
    "maxAttempt": "max_attempts",
    # This server's own fields, which JEDI has no key for (to_task_params writes them).
    "project": "project", "outputFormats": "output_formats", "followInput": "follow_input",
    "cpuPerEvent": "cpu_per_event", "noLoopingCheck": "no_looping_check",
}  # fmt: skip

# Keys checked against what this server does; handled by name below.
CHECKED = frozenset({
    "userName", "prodSourceLabel", "architecture", "cloud", "coreCount", "ramCountUnit", "ramUnit",
    "walltimeUnit", "nGBPerJob", "maxWalltime", "excludedSite", "jobParameters", "log", "dsForIN",
})  # fmt: skip

# Known JEDI keys asking for something this server does not do. An empty value (None, false, 0,
# "", [], {}) asks for nothing and is accepted; any other value is refused with this reason.
REFUSED = {
    "noInput": "tasks here read an input dataset: give an input template with a dataset",
    "pfnList": "tasks here read an input dataset, not a list of files",
    "nFiles": "a task here processes every file of its input",
    "nEvents": "a task here processes every event of its input",
    "nJobs": "the number of jobs follows from the input and the split rule",
    "nSkipFiles": "a task here processes every file of its input",
    "includedSite": "give one site in 'site', or none",
    "nucleus": "there are no nuclei here",
    "mergeOutput": "outputs are not merged here",
    "mergeSpec": "outputs are not merged here",
    "buildSpec": "there are no build jobs here",
    "preproSpec": "there are no preprocessing jobs here",
    "waitInput": "give followInput instead: jobs are made for files as they are added",
    "osMatching": "sites here do not advertise operating systems",
    "container_name": "jobs here do not run in containers",
    "multiStepExec": "jobs here do not run in containers",
    "cpuTime": "there is no CPU-time estimate per event in JEDI's units here",
    "cpuTimeUnit": "there is no CPU-time estimate per event in JEDI's units here",
    "outDiskCount": "there is no output disk requirement here",
    "workDiskCount": "there is no work disk requirement here",
    "baseRamCount": "memory is one number per job here (ramCount)",
    "maxCoreCount": "jobs here run on one core",
    "disableAutoRetry": "failed jobs are retried by the server's retry rules",
    "official": "official group outputs are not supported",
    "addNthFieldToLFN": "file names follow this server's scheme",
    "useSecrets": "there are no user secrets here",
    "useLocalIO": "input access is decided by the site",
    "allowInputLAN": "input access is decided by the site",
    "transferType": "input access is decided by the site",
    "useJobCloning": "jobs are not cloned here",
    "nEventsPerWorker": "there is no event service here",
    "fineGrainedProc": "there is no fine-grained processing here",
    "reuseSecOnDemand": "there are no secondary inputs here",
}

# Entries of jobParameters: what each kind may carry (other known keys: only empty values).
_COMMON = {"type", "value", "hidden", "padding"}
ENTRY_KEYS = {
    "constant": _COMMON,
    "number": _COMMON | {"param_type"},
    "input": _COMMON | {"param_type", "dataset", "expand"},  # containers are always expanded here
    "output": _COMMON | {"param_type", "dataset", "container", "token", "destination", "offset"},
}
ENTRY_REFUSED = {
    "include": "every file of the input is processed here",
    "exclude": "every file of the input is processed here",
    "files": "every file of the input is processed here",
    "offset": "offsets of files, serial numbers or events are not supported here",
    "nFilesPerJob": "the task's nFilesPerJob applies",
    "ratio": "there are no secondary inputs here",
    "eventRatio": "there are no secondary inputs here",
    "consolidate": "inputs are read where they are",
    "random": "files are processed in name order",
    "reusable": "there are no secondary inputs here",
    "es_only": "there is no event service here",
    "allowNoOutput": "a job that writes no output fails here",
    "mergeOnly": "outputs are not merged here",
    "transient": "outputs are not merged here",
    "pseudo": "tasks here read an input dataset",
}
LOG_KEYS = {"type", "param_type", "value", "dataset", "container", "token", "destination"}

# JEDI placeholder -> ours (docs/tasks.md "The job parameters template"), and a note where the
# text a job gets differs. Anything else (${RNDMSEED}, ${SURL}, ${IN[0:2]}, ...) is refused.
PLACEHOLDERS = {
    "IN": ("IN", None), "IN/L": ("IN", None),
    "IN/T": ("IN", "${IN/T} gives jobs their input files as a comma-separated list, not a Python list"),
    "OUTPUT0": ("OUT", None),
    "SN": ("SN", "${SN} is zero-padded to six digits here (000001), like ${SN/P}"), "SN/P": ("SN", None),
    "FIRSTEVENT": ("FIRSTEVENT", None), "SKIPEVENTS": ("SKIPEVENTS", None), "MAXEVENTS": ("MAXEVENTS", None),
}  # fmt: skip
# Ours -> the JEDI placeholder that means exactly the same (for to_task_params).
REVERSE_PLACEHOLDERS = {"IN": "IN/L", "OUT": "OUTPUT0", "SN": "SN/P"}
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
OUR_PLACEHOLDER = re.compile(r"\$\{([A-Z]+)\}")
RAM_UNITS = ("MB", "MBPerCore", "MBPerCoreFixed")  # the same here: jobs run on one core
ANY_CLOUD = "WORLD"
NAMING_NOTE = ("file names are this server's (<output>.<format>._<SN>.root, <output>.log._<SN>.tgz), "
               "not the templates' names")  # fmt: skip
STORAGE_NOTE = "outputs stay at the storage of the site that ran the job: destination and token are not used"
LABELS = {"user": TaskType.ANALYSIS, "managed": TaskType.PRODUCTION, "test": TaskType.PRODUCTION}


@dataclass
class Translation:
    spec: dict
    task_type: str
    notes: list = field(default_factory=list)
    sources: dict = field(default_factory=dict)  # our field -> the JEDI key it came from

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def put(self, name, value, source):
        if value in (None, ""):
            return
        if name in self.spec and self.spec[name] != value:
            raise InvalidInput(
                f"{self.sources[name]} and {source} disagree ({_shown(self.spec[name])} and {_shown(value)})"
            )
        self.spec[name] = value
        self.sources.setdefault(name, source)


def to_spec(params, *, user):
    """The TaskSpecSerializer fields and task type a JEDI task parameter map asks for; raises a
    ServiceError naming the key for anything this server cannot do."""
    if not isinstance(params, dict):
        raise InvalidInput("task_parameters: give the task parameters as a JSON object")
    _refuse_unknown(params)
    result = Translation(spec={}, task_type=_task_type(params, user))
    for key, name in FIELDS.items():
        if key in params:
            result.put(name, params[key], key)
    _check_requirements(params, result)
    _check_site(result)
    if not result.spec.get("transformation"):
        raise InvalidInput("transPath: required: the program the jobs run (a URL, a script or a command)")
    inputs, output = _job_parameters(params.get("jobParameters"), result)
    result.put("input_dataset", inputs, "jobParameters")
    _check_ds_for_in(params, inputs)
    log_dataset = _log(params.get("log"), result)
    result.put("output_dataset", output or log_dataset, "jobParameters" if output else "log")
    if not output and not log_dataset:
        raise InvalidInput("jobParameters: no output template with a dataset, and no log template")
    if output and log_dataset and log_dataset != output:
        result.note(f"logs are stored with the outputs in {output}, not in {log_dataset}")
    return result


def _shown(value):
    """A value as a message quotes it: at most 60 characters of what was sent."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_empty(value):
    return value in (None, False, 0, "") or value == [] or value == {}


def _refuse_unknown(params):
    for key, value in params.items():
        if key in IGNORED or key in FIELDS or key in CHECKED:
            continue
        if key in REFUSED:
            if not _is_empty(value):
                raise InvalidInput(f"task parameter {key} is not supported here: {REFUSED[key]}")
            continue
        raise InvalidInput(f"unknown task parameter {_shown(key)}: this server cannot tell what it asks for")


def _task_type(params, user):
    owner = params.get("userName")
    if owner not in (None, "") and owner != user.username:
        raise PermissionDenied(f"userName {_shown(owner)}: a task is submitted as yourself ({user.username})")
    label = params.get("prodSourceLabel") or "user"
    if not isinstance(label, str) or label not in LABELS:
        raise InvalidInput(
            f"prodSourceLabel {_shown(label)}: give user (analysis task) or managed/test (production task)"
        )
    return LABELS[label]


def _check_requirements(params, result):
    if params.get("prodSourceLabel") == "test":
        result.note("prodSourceLabel test makes a production task: its jobs are labelled managed")
    if params.get("architecture") not in (None, ""):
        raise InvalidInput(f"architecture {_shown(params['architecture'])}: sites here do not advertise platforms, "
                           "so jobs cannot be sent where it runs; leave it empty")  # fmt: skip
    if params.get("cloud") not in (None, "", ANY_CLOUD):
        raise InvalidInput(f"cloud {_shown(params['cloud'])}: tasks here are brokered to any cloud; give a site, "
                           f"or leave cloud empty or {ANY_CLOUD}")  # fmt: skip
    if params.get("coreCount") not in (None, 0, 1):
        raise InvalidInput(f"coreCount {_shown(params['coreCount'])}: jobs here run on one core")
    for key in ("ramCountUnit", "ramUnit"):
        if params.get(key) not in (None, "", *RAM_UNITS):
            raise InvalidInput(f"{key} {_shown(params[key])}: give ramCount in MB ({', '.join(RAM_UNITS)})")
    if params.get("walltimeUnit") not in (None, ""):
        raise InvalidInput(f"walltimeUnit {_shown(params['walltimeUnit'])}: give walltime in seconds, without a unit")
    if "nGBPerJob" in params:
        result.put("max_size_per_job_mb", _scaled(params, "nGBPerJob", 1024), "nGBPerJob")
    if "maxWalltime" in params:
        result.put("walltime_s", _scaled(params, "maxWalltime", 3600), "maxWalltime")
    if "excludedSite" in params:
        result.put("excluded_sites", _site_list(params["excludedSite"]), "excludedSite")


def _scaled(params, key, factor):
    """A number of GB or hours as MB or seconds; zero, negative or empty asks for nothing (prun sends -1)."""
    value = params[key]
    if value in (None, ""):
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInput(f"{key}: give a number, got {_shown(value)}")
    return max(1, round(number * factor)) if number > 0 else None


def _site_list(value):
    if _is_empty(value):
        return None
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidInput("excludedSite: give site names, as a list or comma-separated")
    return [name.strip() for name in names if name.strip()] or None


def _check_site(result):
    site = result.spec.get("site")
    if isinstance(site, str) and "," in site:
        raise InvalidInput(f"site {_shown(site)}: give one site (a task here runs at one site, or anywhere)")


def _check_ds_for_in(params, inputs):
    given = params.get("dsForIN")
    if given not in (None, "") and (not isinstance(given, str) or given.rstrip("/") != inputs):
        raise InvalidInput(f"dsForIN {_shown(given)} differs from the input template's dataset {inputs}")


# -- jobParameters ---------------------------------------------------------------------------------


def _job_parameters(entries, result):
    """(input dataset, output dataset) of the entries; the job parameter template goes into result."""
    if not isinstance(entries, list) or not entries:
        raise InvalidInput("jobParameters: give a list of constant and template entries")
    datasets, parts, padded = {}, [], False
    for index, entry in enumerate(entries):
        where = f"jobParameters[{index}]"
        kind = _entry_kind(entry, where)
        _check_keys(entry, ENTRY_KEYS[kind], where)
        value = entry.get("value", "")
        if not isinstance(value, str):
            raise InvalidInput(f"{where}.value: give text")
        if kind in ("input", "output"):
            if kind in datasets:
                raise InvalidInput(f"{where}: a second {kind} template; a task here has one {kind} dataset")
            datasets[kind] = _dataset(entry, where)
        if kind == "input":
            _check_input_stream(value, where)
        if kind == "output":
            value = _output_value(entry, value, datasets["output"], where, result)
        if entry.get("hidden") is True:  # JEDI: declares a dataset, adds nothing to the parameters
            continue
        padded = entry.get("padding") is not False
        parts.append(_our_placeholders(value, where, result) + (" " if padded else ""))
    if "input" not in datasets:
        raise InvalidInput("jobParameters: no input template (param_type input) with a dataset; "
                           "a task here reads an input dataset")  # fmt: skip
    template = "".join(parts)
    result.put("job_parameters", template[:-1] if padded else template, "jobParameters")
    return datasets["input"], datasets.get("output")


def _entry_kind(entry, where):
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where}: give an object with type and value")
    for flag in ("hidden", "padding"):
        if flag in entry and not isinstance(entry[flag], bool):
            raise InvalidInput(f"{where}.{flag}: give true or false")
    if entry.get("type") == "constant":
        return "constant"
    if entry.get("type") != "template":
        raise InvalidInput(f"{where}.type: give constant or template, not {_shown(entry.get('type'))}")
    param_type = entry.get("param_type")
    if param_type not in ("input", "output", "number"):
        raise InvalidInput(f"{where}.param_type {_shown(param_type)} is not supported here: give input, "
                           "output or number (the log template goes in 'log')")  # fmt: skip
    return param_type


def _check_keys(entry, allowed, where):
    for key, value in entry.items():
        if key in allowed:
            continue
        if key in ENTRY_REFUSED:
            if not _is_empty(value):
                raise InvalidInput(f"{where}.{key} is not supported here: {ENTRY_REFUSED[key]}")
            continue
        raise InvalidInput(f"{where}.{_shown(key)}: unknown key of a jobParameters entry")


def _dataset(entry, where):
    name = entry.get("dataset")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"{where}.dataset: give a dataset name")
    if "," in name:
        raise InvalidInput(f"{where}.dataset {_shown(name)}: give one dataset or container, not a list")
    name = name.strip().rstrip("/")  # prun names containers with a trailing slash
    container = entry.get("container")
    if container not in (None, "") and str(container).rstrip("/") != name:
        raise InvalidInput(
            f"{where}.container {_shown(container)}: a container other than the dataset is not supported"
        )
    return name


def _check_input_stream(value, where):
    found = PLACEHOLDER.search(value)
    stream = found.group(1).split("/")[0] if found else "IN"
    if stream != "IN":
        raise InvalidInput(f"{where}: input stream {_shown(stream)}: only the primary input ${{IN}} is supported here")


def _output_value(entry, value, dataset, where, result):
    """JEDI's rule: the file name template is what follows the last '='; the job gets the file there."""
    template = value.split("=")[-1].replace("'", "")
    if not template:
        raise InvalidInput(f"{where}.value: no output file name template")
    result.note(NAMING_NOTE)
    if entry.get("token") or entry.get("destination"):
        result.note(STORAGE_NOTE)
    return value.replace(template, "${OUTPUT0}")


def _our_placeholders(text, where, result):
    def replace(match):
        name = match.group(1)
        if name not in PLACEHOLDERS:
            known = ", ".join(f"${{{key}}}" for key in PLACEHOLDERS)
            raise InvalidInput(f"{where}: placeholder ${{{_shown(name)}}} is not supported here; supported: {known}")
        ours, note = PLACEHOLDERS[name]
        if note:
            result.note(note)
        return f"${{{ours}}}"

    return PLACEHOLDER.sub(replace, text)


def _log(log, result):
    if _is_empty(log):
        return None
    if not isinstance(log, dict):
        raise InvalidInput("log: give the log template as an object with a dataset")
    for key in log:
        if key not in LOG_KEYS:
            raise InvalidInput(f"log.{_shown(key)}: unknown key of the log template")
    if log.get("param_type", "log") != "log":
        raise InvalidInput("log.param_type: give log")
    if log.get("value"):
        result.note(NAMING_NOTE)
    if log.get("token") or log.get("destination"):
        result.note(STORAGE_NOTE)
    return _dataset(log, "log")


# -- the other way: a task as a JEDI map ----------------------------------------------------------


def to_task_params(task):
    """The task as a JEDI task parameter map which to_spec() turns back into the same definition."""
    analysis = task.type == TaskType.ANALYSIS
    params = {
        "taskName": task.name, "userName": task.owner_name, "vo": task.vo, "workingGroup": task.working_group or None,
        "prodSourceLabel": task.prod_source_label, "taskType": "anal" if analysis else "prod",
        "processingType": None, "architecture": None, "transPath": task.transformation,
        "transUses": task.sw_release or None, "transHome": task.trf_version or None, "taskPriority": task.priority,
        "site": task.site or None, "excludedSite": list(task.excluded_sites), "maxAttempt": task.max_attempts,
        "ramCount": task.ram_mb, "ramCountUnit": "MB", "walltime": task.walltime_s,
        "jobParameters": _entries(task), "log": _log_template(task.output_dataset),
    }  # fmt: skip
    params.update(_split_rule(task))
    params.update(_extensions(task))
    if task.no_looping_check:
        params["noLoopingCheck"] = True
    return params


def _split_rule(task):
    rule = {}
    if task.n_files_per_job:
        rule["nFilesPerJob"] = task.n_files_per_job
    if task.n_events_per_job:
        rule["nEventsPerJob"] = task.n_events_per_job
    if task.max_size_per_job_mb:
        size = task.max_size_per_job_mb / 1024
        rule["nGBPerJob"] = int(size) if size.is_integer() else size
    if task.events_per_file:
        rule["nEventsPerInputFile"] = task.events_per_file
    return rule


def _extensions(task):
    """Our fields JEDI has no key for, under this server's own keys (docs/panda-compat.md)."""
    extra = {"outputFormats": task.output_formats, "followInput": task.follow_input}
    if task.project:
        extra["project"] = task.project
    if task.cpu_per_event:
        extra["cpuPerEvent"] = task.cpu_per_event
    return extra


def _entries(task):
    output = task.output_dataset
    first_format = next((part for part in task.output_formats.split(".") if part), "root")
    entries = [
        {"type": "template", "param_type": "input", "dataset": task.input_dataset, "value": "${IN/L}", "hidden": True},
        {"type": "template", "param_type": "output", "dataset": output, "hidden": True,
         "value": f"{output}.{first_format}._${{SN/P}}.root"},
    ]  # fmt: skip
    if task.job_parameters:
        entries.append({"type": "constant", "value": _jedi_placeholders(task.job_parameters)})
    return entries


def _log_template(output):
    return {"type": "template", "param_type": "log", "dataset": output, "value": f"{output}.log._${{SN/P}}.tgz"}


def _jedi_placeholders(template):
    return OUR_PLACEHOLDER.sub(lambda match: f"${{{REVERSE_PLACEHOLDERS.get(match.group(1), match.group(1))}}}",
                               template)  # fmt: skip
