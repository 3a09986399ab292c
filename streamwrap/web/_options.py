"""The options every delivery of a response to a client takes, checked alike by
:func:`~streamwrap.web.sse_response`, :func:`~streamwrap.web.stream_to_websocket`,
:func:`~streamwrap.web.websocket_chat` and :func:`~streamwrap.web.chat_app`."""

from __future__ import annotations

import math
from typing import Literal

# Only the public API: web is a client of streamwrap like any application.
from streamwrap import InputError

__all__ = ["CLOSE_GRACE_SECONDS", "OnDisconnect", "check_heartbeat", "check_on_disconnect"]

OnDisconnect = Literal["cancel", "continue"]
_ON_DISCONNECT = ("cancel", "continue")

# How long a response that is being cancelled may take to close its connection before we
# stop waiting for it (closing takes milliseconds; this only bounds a stuck one).
CLOSE_GRACE_SECONDS = 5.0


def check_on_disconnect(on_disconnect: object) -> OnDisconnect:
    if on_disconnect == "cancel" or on_disconnect == "continue":
        return on_disconnect
    raise InputError(
        f"on_disconnect must be one of {', '.join(map(repr, _ON_DISCONNECT))}; got {on_disconnect!r}"
    )


def check_heartbeat(heartbeat: object) -> float | None:
    if heartbeat is None:
        return None
    if (
        isinstance(heartbeat, bool)
        or not isinstance(heartbeat, int | float)
        or not math.isfinite(heartbeat)
        or heartbeat <= 0
    ):
        raise InputError(
            f"heartbeat must be a number of seconds > 0, or None to send none; got {heartbeat!r}"
        )
    return float(heartbeat)
