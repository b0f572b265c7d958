"""Build xares-mini, the built-in suite of real audio (same as `xares-hf mini build`).

    python scripts/make_mini_suite.py [--size tiny|mini] [--seed 0] [--out DIR] [--tasks ...]
"""

import sys

from xares_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["mini", "build", *sys.argv[1:]]))
