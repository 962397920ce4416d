"""``python -m virtplane.cli``."""

import sys

from virtplane.cli import main

sys.exit(main())
