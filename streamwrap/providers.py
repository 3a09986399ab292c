"""The extension API: everything a provider package needs, and no private module.

A provider is a :class:`ModelWrapper` subclass plus a wire mapper. The base class owns the
call shape and everything that is the same for every provider (validating the prompt,
retries before the first token, the first-token and idle timeouts, cancellation,
accumulation and replay, usage estimates, finish-reason normalisation, sinks); a provider
supplies two things:

1. **The request.** A subclass sets its class attributes (``model_type``, ``provider``,
   ``extra``, ``api_key_env``, ``base_url_env``, ``api_key_optional``, ``config_keys``) and
   implements two methods. ``_make_client()`` builds the client that sends requests, once
   per wrapper, on the library's event loop (usually :func:`make_httpx_client`, which takes
   the API key as the :class:`~streamwrap.Secret` ``self._api_key``); ``self._client()``
   returns it. ``async _open(request)`` turns one :class:`ChatRequest` (model name,
   normalised messages, tools in OpenAI's form, call parameters) into an open
   :class:`Upstream`: it sends the request, raises a
   :class:`~streamwrap.ProviderHTTPError` (:func:`http_error` builds the right subclass
   from a status and body) or :class:`~streamwrap.ProviderConnectionError` if that fails
   (those, with a retryable status, are retried), and returns the stream.
   :func:`post_json` does all of it for a JSON-over-HTTP API: POST, typed errors, and a
   :class:`BodyUpstream` that feeds the body to a fresh mapper (or, for a non-streaming
   call, the parsed body to a function that returns its deltas). A wrapper that sends
   with a provider's SDK instead returns a :class:`BodyUpstream` over the SDK's raw byte
   stream (a :class:`StaticUpstream` for a whole response), inside a
   :class:`RedactingUpstream`, which scrubs the API key from the errors on their way out.

2. **The mapper**, a :class:`WireMapper` subclass: bytes in, as the network delivers them;
   deltas out. It passes its decoder to the base class (:class:`SSEDecoder` or
   :class:`NDJSONDecoder`: sans-I/O, feed bytes, get whole events or lines) and writes only
   ``map_event(event, out)``, one decoded event → deltas: it parses the event with
   :func:`event_json` and appends :class:`TextDelta`, :class:`ReasoningDelta`,
   :class:`ToolCallDelta`, :class:`UsageReport` (a :class:`Usage`, usually
   ``Usage.reported(...)``), :class:`Finish` (the provider's own reason: the response
   normalises it) and :class:`Metadata` (the provider's response id and model). An error the
   provider reports in the stream is raised as a :class:`~streamwrap.ProviderStreamError`.
   It also says whether the stream ended properly (``ended()``), what shape the JSON should
   have and what a cut stream's error says (two class attributes). The base class does the
   rest: JSON of the wrong shape (one of :data:`SHAPE_ERRORS`) becomes a
   :class:`~streamwrap.StreamProtocolError`; when one read holds good events and then a bad
   one, the good deltas are delivered and the error raised next, so that its
   ``partial_text`` includes them; a body that ends before ``ended()`` is a
   :class:`~streamwrap.StreamInterruptedError`.

Then the wrapper is registered under its ``model_type``: through the
``streamwrap.model_types`` entry-point group of the package's metadata (found by
:func:`~streamwrap.load_model` and :func:`~streamwrap.model_types` once the package is
installed), or at run time with :func:`register_model_type`. The errors, ``Secret`` and
the response types are public in :mod:`streamwrap` itself.

A whole provider built from this module alone, with its tests against the emulator
(:mod:`streamwrap.testing`), is ``tests/providers/example_provider`` in the source tree; the guide
``docs/writing-a-provider.md`` walks through it.

Importing this module imports no HTTP library: :func:`make_httpx_client` and
:func:`post_json` import httpx when they are called.
"""

from __future__ import annotations

from ._delta import Delta, Finish, Metadata, ReasoningDelta, TextDelta, ToolCallDelta, UsageReport
from ._registry import register_model_type
from ._transport._http_error import http_error
from ._transport._httpx_client import make_httpx_client, post_json
from ._transport._ndjson import NDJSONDecoder
from ._transport._sse import ServerSentEvent, SSEDecoder
from ._transport._upstream import BodyUpstream, RedactingUpstream, StaticUpstream, Upstream
from ._transport._wire_mapper import Decoder, WireMapper
from ._transport._wire_shape import SHAPE_ERRORS, event_json
from ._usage import Usage
from ._wrapper import ChatRequest, ModelWrapper

__all__ = [
    # the wrapper and its request
    "ChatRequest",
    "ModelWrapper",
    "register_model_type",
    # sending the request, and the open response
    "BodyUpstream",
    "RedactingUpstream",
    "StaticUpstream",
    "Upstream",
    "http_error",
    "make_httpx_client",
    "post_json",
    # decoding the body
    "Decoder",
    "NDJSONDecoder",
    "SHAPE_ERRORS",
    "SSEDecoder",
    "ServerSentEvent",
    "WireMapper",
    "event_json",
    # what a mapper produces
    "Delta",
    "Finish",
    "Metadata",
    "ReasoningDelta",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "UsageReport",
]
