"""``python -m dagmpi``: see :mod:`dagmpi.cli`."""

import sys

from .cli import main

sys.exit(main())
