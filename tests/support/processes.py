"""What the tests' child processes start with."""

from __future__ import annotations

import signal

__all__ = ["sigint_as_in_a_terminal"]


def sigint_as_in_a_terminal() -> None:
    """A ``preexec_fn``: the child gets SIGINT's default disposition, as a program started
    from a terminal does. A shell that runs the tests as a background job leaves SIGINT
    ignored in every process it starts, and Python installs its KeyboardInterrupt handler
    only where SIGINT is not ignored: Ctrl-C tests would then see a program that never
    notices SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
