"""``python -m switchboard_local.gateway``: the ``switchboard-local`` command."""

import sys

from switchboard_local.cli import main

sys.exit(main())
