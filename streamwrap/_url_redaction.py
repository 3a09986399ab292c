"""Credentials inside URLs kept out of error messages, reprs and log lines.

A ``base_url`` may carry credentials: userinfo (``http://user:pass@proxy/v1``, also the
usual way to give a proxy or a self-hosted gateway a basic-auth password) and query
parameters (``?api-key=...`` for Azure-style gateways, ``?key=...`` for Gemini, a
signed URL's ``sig=`` or ``X-Amz-Signature=``, OAuth's ``access_token=``). streamwrap names
the URL it could not reach in its errors, which a web app forwards to the browser; so every
URL that reaches text passes through :func:`redact_urls`: the reprs that show a
``base_url``, and every error message (so also a third-party exception quoted in one).

What is masked:

* the whole userinfo, user name included (a user name is often the key itself, as in
  ``https://<key>@host``);
* the value of every query or fragment parameter whose name looks secret (see
  :func:`is_secret_name`), anywhere in the text: also in a URL without a scheme, as a
  server's error body quotes the path it was asked for (``/v1?api-key=...``).

The HTTP libraries under the SDKs log every request's full URL at INFO (``HTTP Request:
POST http://user:pass@host/...``): :func:`mask_http_logs` puts a filter on their loggers,
which the wrappers do when their ``base_url`` holds credentials (a provider SDK that logs
URLs itself adds its logger with :func:`add_http_logger`).

What is not masked: a secret in the path (``/bot<token>/``) cannot be told from a model name.
The host, port, path and the other parameters stay, so the message still says where the
request went.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

__all__ = ["MASK", "add_http_logger", "is_secret_name", "mask_http_logs", "redact_urls"]

MASK = "**********"

# Substrings of a parameter name (lower case, separators removed) that mark its value as a
# secret: "key" covers key, api_key, api-key, apiKey, x-goog-api-key, subscription-key,
# X-Amz-Credential's neighbours...; "token" access_token, id_token, refresh_token,
# X-Amz-Security-Token; "secret" client_secret; "passw"/"pwd" password, passwd, pwd;
# "signature" and "credential" the signed URLs of S3, GCS and Azure; "auth" auth,
# authorization, oauth_*; "session" session ids. Masking a harmless parameter that happens
# to match ("monkey") costs nothing: it is only an error message.
_SECRET_SUBSTRINGS = (
    "key",
    "token",
    "secret",
    "passw",
    "pwd",
    "signature",
    "credential",
    "auth",
    "session",
    "jwt",
)
# Whole words only, since as substrings they are too common: Azure SAS's "sig", "pass".
_SECRET_WORDS = frozenset({"sig", "pass", "hmac"})
_WORD_SPLIT = re.compile(r"[^a-z0-9]+|(?<=[a-z])(?=[A-Z])")

# scheme://userinfo@ — userinfo runs to the last "@" before the authority ends ("/", "?",
# "#"), as urllib and httpx read it, so a password that contains "@" is masked whole.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#'\"<>]*@")
# name=value after "?", "&" or "#": a query or fragment parameter.
_PARAMETER = re.compile(r"(?P<lead>[?&#](?P<name>[^=&#?\s'\"<>]+)=)(?P<value>[^&#\s'\"<>]*)")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter called ``name`` may hold a credential (case-insensitive)."""
    name = unquote(name)
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(word in squashed for word in _SECRET_SUBSTRINGS):
        return True
    return any(word.lower() in _SECRET_WORDS for word in _WORD_SPLIT.split(name) if word)


def _mask_parameter(match: re.Match[str]) -> str:
    if match["value"] and is_secret_name(match["name"]):
        return match["lead"] + MASK
    return match[0]


def redact_urls(text: str) -> str:
    """``text`` with the userinfo of every URL in it masked, and the values of its
    secret-looking query and fragment parameters.

    ``text`` may be a URL (an invalid one included: it is the one an error names) or a
    message that quotes URLs.
    """
    if "@" in text:
        text = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", text)
    if "=" in text:
        text = _PARAMETER.sub(_mask_parameter, text)
    return text


# httpx, and httpx2, the fork openai 3.x sends with: both log "HTTP Request: <method> <url>".
# A provider whose SDK logs URLs of its own adds its logger (add_http_logger) when its
# wrapper is imported, which is before any of its requests. A logger's filters see only the
# records logged on that very logger, so each one is named, not a parent.
_http_loggers = ["httpx", "httpx2"]
_masking = False
# The formatter that renders a traceback the way logging's own Formatter does.
_TRACEBACKS = logging.Formatter()


class _MaskingFilter(logging.Filter):
    """Masks URL credentials in the records of the logger it is added to, the rendered
    traceback of a record logged with ``exc_info`` included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_urls(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatters render exc_text when it is set rather than the traceback itself.
            record.exc_text = redact_urls(_TRACEBACKS.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_urls(record.exc_text)
        return True


def mask_http_logs() -> None:
    """Mask URL credentials in the request log lines of the HTTP libraries, and of the SDK
    loggers added with :func:`add_http_logger` (idempotent)."""
    global _masking
    _masking = True
    for name in _http_loggers:
        _mask(name)


def add_http_logger(name: str) -> None:
    """Have :func:`mask_http_logs` mask the records of the logger ``name`` too: a provider
    SDK's, which logs the URL of each request. At once, if masking is on already."""
    if name not in _http_loggers:
        _http_loggers.append(name)
    if _masking:
        _mask(name)


def _mask(name: str) -> None:
    logger = logging.getLogger(name)
    if not any(isinstance(f, _MaskingFilter) for f in logger.filters):
        logger.addFilter(_MaskingFilter())
