"""The transport: from an HTTP response to batches of deltas, for every provider.

The upstreams a producer reads (``_upstream``), the typed error for a failed status
(``_http_error``), the httpx client of the native-protocol wrappers (``_httpx_client``) and
its connection pools (``_pool``), the base class of every provider's wire mapper
(``_wire_mapper``), and what the mappers share: the SSE (``_sse``) and NDJSON (``_ndjson``)
decoders and their line buffer (``_line_buffer``), and the readers of the JSON in a stream,
with the check for JSON of the wrong shape (``_wire_shape``).

It imports only the value modules (errors, deltas, usage, secrets); the wrapper and the
providers import it. Nothing is imported here, so that importing one transport module
does not import the others.
"""
