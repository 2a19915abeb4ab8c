"""dq2: the command-line client of the PanDA monitor's DQ2 data catalog.

Standard library only, so it installs on any worker node or laptop with
Python 3.11+. Entry point: `client.dq2:main` (the `dq2` command).
"""

__version__ = "0.1.0"
