"""The pilot factory: keeps each site it serves supplied with pilots (docs/pilot-factory.md).

decide.py    how many pilots to submit (pure functions)
plugins.py   how to submit them: the plugin interface and local processes
batch.py     Slurm, PBS and HTCondor through their command-line tools
wrapper.py   the wrapper script batch pilots run, and the pilot tarball it downloads
views.py     GET /pilot/wrapper.sh and /pilot/pilot.tar.gz
services.py  writes: factory and pilot rows, states, pilot -> job links, the pilots' own reports
selectors.py reads: live pilots, operating or silent factories, the scheduler page's counts
demand.py    reads of jobs: activated and held jobs per site, jobs that name a pilot
cycle.py     one factory cycle, and the loop `manage.py pilot_factory` runs
"""

VERSION = "1.0"
