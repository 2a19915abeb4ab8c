"""`python -m client` runs dq2 (as does `python -m client.dq2` and the installed `dq2`)."""

import sys

from client.dq2 import main

sys.exit(main())
