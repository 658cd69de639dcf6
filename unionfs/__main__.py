"""``python -m unionfs``: the command line of :mod:`unionfs.tools.cli`."""

import sys

from .tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
