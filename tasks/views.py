"""Portal pages of the tasks app: the production task request form.

The task pages themselves (/tasks/<id>/) are built elsewhere; a successful request
redirects there.
"""

from django.shortcuts import redirect, render

from pandamon import roles
from pandamon.errors import PermissionDenied, ServiceError
from pandamon.pages import error_page

from .choices import TaskType
from .forms import TaskRequestForm
from .services import creation


def task_request(request):
    """GET the Generic Task Request form; POST it to define a production task (production managers)."""
    refusal = _refusal(request.user)
    if refusal is not None:
        return error_page(request, refusal)
    form = TaskRequestForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                spec = form.spec()
                task, _ = creation.submit_task(user=request.user, spec=spec, task_type=TaskType.PRODUCTION)
            except ServiceError as error:
                form.add_error(None, error.message)
                status = error.status_code
            else:
                return redirect(f"/tasks/{task.task_id}/")
        else:
            status = 400
    return render(request, "tasks/task_request.html", {"form": form}, status=status)


def _refusal(user):
    if not user.is_authenticated:
        return PermissionDenied("log in as a production manager to request production tasks")
    if not roles.has_role(user, roles.PRODUCTION_MANAGER):
        return PermissionDenied(f"defining production tasks needs the {roles.PRODUCTION_MANAGER} role; "
                                f"{user.username} does not have it")  # fmt: skip
    return None
