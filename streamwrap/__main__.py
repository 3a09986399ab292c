"""``python -m streamwrap``: the same as the ``streamwrap`` command."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
