"""``python -m wfkit`` is the ``wfkit`` command."""

import sys

from wfkit.app.cli import main

sys.exit(main())
