"""Azure's answer to a prompt its input filter blocks, as a :class:`~streamwrap.ContentFilterError`.

An HTTP 400 whose error ``code`` is ``content_filter`` (with ``innererror.code``
``ResponsibleAIPolicyViolation``). Every OpenAI-dialect wrapper recognises it, not only
``azure_openai_chat``: Azure's ``/openai/v1/`` endpoint is reached through ``openai_chat``
with a ``base_url``, and its filter answers the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._errors import ContentFilterError, ProviderHTTPError


def with_content_filter(error: ProviderHTTPError) -> ProviderHTTPError:
    """``error`` as a :class:`ContentFilterError` if its body is a content filter's block."""
    if error.status_code == 400 and _is_content_filter(error.body):
        return ContentFilterError(
            error.message,
            provider=error.provider,
            status_code=error.status_code,
            body=error.body,
            retry_after=error.retry_after,
        )
    return error


def _is_content_filter(body: Any) -> bool:
    """Whether an error body is the prompt-blocked answer: ``{"error": {"code":
    "content_filter", "innererror": {"code": "ResponsibleAIPolicyViolation", ...}}}``."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return False
    inner = error.get("innererror")
    inner_code = inner.get("code") if isinstance(inner, Mapping) else None
    return error.get("code") == "content_filter" or inner_code == "ResponsibleAIPolicyViolation"
