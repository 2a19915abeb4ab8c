"""The real PanDA client and pilot from PyPI, each in its own virtualenv (docs/panda-compat.md).

The virtualenvs are built once under var/compat/ (or $PANDAMON_COMPAT_DIR) and reused by later
runs. When a package cannot be installed (no registry reachable) the tests that need it are
skipped with the pip output as the reason, never failed: the suite must still run offline.
"""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from django.conf import settings

PANDA_CLIENT = "panda-client==2.2.0"
PANDA_PILOT = "panda-pilot==3.7.0.36"


def compat_dir():
    return Path(os.environ.get("PANDAMON_COMPAT_DIR") or Path(settings.BASE_DIR) / "var" / "compat")


def _run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)


def _virtualenv(name, requirement):
    """A virtualenv holding `requirement`; pytest.skip() when it cannot be built."""
    venv = compat_dir() / name
    marker = venv / ".installed"
    if marker.exists() and marker.read_text() == requirement:
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = ([sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", requirement])  # fmt: skip
    for argv in steps:
        done = _run(argv)
        if done.returncode:
            pytest.skip(f"cannot install {requirement}: {(done.stderr or done.stdout)[-800:]}")
    marker.write_text(requirement)
    return venv


def panda_client_python():
    """The python of a virtualenv with panda-client installed."""
    return _virtualenv("venv-client", PANDA_CLIENT) / "bin" / "python"


def panda_pilot():
    """(python, pilot.py): the wheel has no pilot.py launcher, so it comes from the sdist."""
    venv = _virtualenv("venv-pilot", PANDA_PILOT)
    launcher_dir = compat_dir() / "pilot3"
    launcher = launcher_dir / "pilot.py"
    if not launcher.exists():
        download = compat_dir() / "sdist"
        done = _run([str(venv / "bin" / "pip"), "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                     PANDA_PILOT, "-d", str(download)])  # fmt: skip
        if done.returncode:
            pytest.skip(f"cannot download the {PANDA_PILOT} sdist: {(done.stderr or done.stdout)[-800:]}")
        _extract_launcher(next(download.glob("panda-pilot-*.tar.gz")), launcher_dir)
    return venv / "bin" / "python", launcher


def _extract_launcher(archive, target):
    """Unpack the sdist's source tree (pilot.py, PILOTVERSION, the pilot/ package) into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        for member in tar.getmembers():
            relative = member.name[len(top) + 1 :]
            if not relative:
                continue
            member.name = relative
            tar.extract(member, target, filter="data")
