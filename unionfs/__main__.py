"""``python -m unionfs``: the command line of :mod:`unionfs.tools.cli`."""

import os
import sys

from .tools import cli

if __name__ == "__main__":
    code = cli.main()
    if cli.daemon_started:  # a mount's starting process: its daemon serves, nothing here to tear down
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
