"""``python -m gru4rec``: the command line (see :mod:`gru4rec.cli`)."""

import sys

from .cli import main

sys.exit(main())
