"""``python -m switchboard_local.gateway --help``."""

import sys

from switchboard_local.gateway.cli import main

sys.exit(main())
