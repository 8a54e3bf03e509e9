"""python -m porter: the porter command."""

import sys

from .cli import main

sys.exit(main())
