"""The production task request form (the 2006 "Generic Task Request"), turned into a task spec."""

from django import forms

SPLITTING_RULES = [
    ("n_files_per_job", "files per job"),
    ("n_events_per_job", "events per job (jobs take ranges of events within files)"),
    ("max_size_per_job_gb", "GB of input per job"),
]


class TaskRequestForm(forms.Form):
    name = forms.CharField(max_length=255, help_text="Unique, e.g. mc11.007216.singlepart_mu18.recon.v11000303")
    project = forms.CharField(max_length=64, required=False, help_text="e.g. mc11")
    working_group = forms.CharField(max_length=32, required=False)
    input_dataset = forms.CharField(max_length=255, help_text="Dataset or container to process.")
    output_dataset = forms.CharField(max_length=255, required=False, help_text="Empty: the task name.")
    output_formats = forms.RegexField(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$", max_length=200, initial="root",
                                      help_text="Dot-separated, one output file per format and job, e.g. ESD.AOD")  # fmt: skip
    transformation = forms.CharField(max_length=100_000, help_text="e.g. csc.reco.trf, or the URL of a script")
    trf_version = forms.CharField(max_length=64, required=False, label="Transformation version")
    sw_release = forms.CharField(max_length=64, required=False, label="Release", help_text="e.g. 11.0.42")
    job_parameters = forms.CharField(max_length=100_000, required=False, initial="${IN} ${OUT}",
                                     help_text="Template: ${IN} ${OUT} ${SN} ${FIRSTEVENT} ${SKIPEVENTS} ${MAXEVENTS}")  # fmt: skip
    events_per_file = forms.IntegerField(min_value=1, required=False,
                                         help_text="When the input files do not say how many events they hold.")  # fmt: skip
    cpu_per_event = forms.IntegerField(min_value=0, initial=0, label="CPU per event", help_text="kSI2k seconds")
    ram_mb = forms.IntegerField(min_value=0, max_value=10_000_000, initial=0, label="Memory (MB)")
    priority = forms.IntegerField(min_value=0, max_value=10_000, initial=1000)
    max_attempts = forms.IntegerField(min_value=1, max_value=100, initial=3)
    splitting = forms.ChoiceField(choices=SPLITTING_RULES, initial="n_files_per_job", label="Splitting rule")
    per_job = forms.IntegerField(min_value=1, initial=1, label="per job", help_text="How many of the rule's unit.")
    site = forms.CharField(max_length=64, required=False, help_text="Run only at this site (empty: brokerage).")

    def spec(self):
        """The task spec for tasks.services.creation.submit_task."""
        data = self.cleaned_data
        spec = {name: data[name] for name in (
            "name", "project", "working_group", "input_dataset", "output_formats", "transformation", "trf_version",
            "sw_release", "job_parameters", "events_per_file", "cpu_per_event", "ram_mb", "priority",
            "max_attempts", "site",
        ) if data.get(name) not in (None, "")}  # fmt: skip
        spec["output_dataset"] = data["output_dataset"] or data["name"]
        if data["splitting"] == "max_size_per_job_gb":
            spec["max_size_per_job_mb"] = data["per_job"] * 1024
        else:
            spec[data["splitting"]] = data["per_job"]
        return spec
