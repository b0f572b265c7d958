"""``python -m xares_hf`` and ``accelerate launch -m xares_hf ...``: the command line."""

import sys

from .cli import main

sys.exit(main())
