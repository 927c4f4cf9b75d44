"""``python -m wfkit`` is the ``wfkit`` command."""

import sys

from wfkit.cli import main

sys.exit(main())
