"""``python -m streamwrap``: the same as the ``streamwrap`` command."""

from ._cli import main
from ._interrupt import exit_process

if __name__ == "__main__":
    exit_process(main())
