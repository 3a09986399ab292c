"""The ONE fault list: every way the emulator breaks a stream (a :class:`Fault` kind) and
every HTTP error status the tests script, with the typed error each must raise.

The tests that run "every fault" (the fault matrix, the soak) take their kinds and errors
from here, so that a fault the emulator learns is one row here, and
``test_fault_matrix.py`` fails until it has a case for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import streamwrap
from streamwrap.testing import Fault

# Every kind of Fault, in the order streamwrap.testing declares them.
FAULT_KINDS: tuple[str, ...] = (
    "drop",
    "error_event",
    "inband_error",
    "stall",
    "stall_with_keepalive",
    "malformed_line",
    "truncated_json",
    "end_without_finish",
    "slow_trickle",
)

# The error a mid-stream fault raises (a stall: when it outlasts the timeouts). A slow
# trickle never fails.
STREAM_ERRORS: Mapping[str, type[streamwrap.StreamError]] = {
    "drop": streamwrap.StreamInterruptedError,
    "end_without_finish": streamwrap.StreamInterruptedError,
    "error_event": streamwrap.ProviderStreamError,
    "inband_error": streamwrap.ProviderStreamError,
    "malformed_line": streamwrap.StreamProtocolError,
    "truncated_json": streamwrap.StreamProtocolError,
    "stall": streamwrap.StreamTimeoutError,
    "stall_with_keepalive": streamwrap.StreamTimeoutError,
}

# The error an HTTP error status raises, whatever the provider.
HTTP_ERRORS: Mapping[int, type[streamwrap.ProviderHTTPError]] = {
    401: streamwrap.AuthenticationError,
    404: streamwrap.NotFoundError,
    429: streamwrap.RateLimitError,
    500: streamwrap.ServerError,
    503: streamwrap.ServerError,
}


# The faults that come after ``n`` content chunks and need nothing more (the stalls need
# their length, the slow trickle its pace: build those with Fault directly).
_AFTER: Mapping[str, Callable[..., Fault]] = {
    "drop": Fault.drop_after,
    "error_event": Fault.error_event_after,
    "inband_error": Fault.inband_error_after,
    "malformed_line": Fault.malformed_line_after,
    "truncated_json": Fault.truncated_json_after,
    "end_without_finish": Fault.end_without_finish_after,
}


def after(kind: str, n: int, **details: str) -> Fault:
    """The fault ``kind`` after ``n`` content chunks; ``details``: the ``message`` (and
    ``code``) of an error event or object."""
    return _AFTER[kind](n, **details)
