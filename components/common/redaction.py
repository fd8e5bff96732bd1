"""Secrets kept out of what is printed: user names and passwords in URLs, signing and token
parameters of query strings, and the values of the object store's secret variables. The
console handler of every service (:func:`components.common.logs.setup_logging`) filters every
record through :func:`redact`, whichever library logged it (httpx logs each request's URL)."""

from __future__ import annotations

import logging
import os
import re

SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "MINIO_SECRET_KEY", "AWS_SESSION_TOKEN")


# scheme://userinfo@ : everything up to the last "@" before the host's end
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s]*@")
# query parameters that carry a signature, a credential or a token
_SECRET_PARAM_RE = re.compile(
    r"(?i)([?&;](?:[a-z0-9_.\-]*(?:signature|credential|token|secret|password|passwd|apikey|"
    r"api_key|accesskeyid|access_key)[a-z0-9_.\-]*|sig|key)=)[^&#\s'\"<>,;:)]*")


def redact(text) -> str:
    """``text`` (a URL, an endpoint, a message) without the secrets it may hold: user names and
    passwords in URLs, signing and token parameters of query strings, and the values of
    ``AWS_SECRET_ACCESS_KEY``, ``MINIO_SECRET_KEY`` and ``AWS_SESSION_TOKEN``."""
    text = _USERINFO_RE.sub(r"\1***@", str(text))
    text = _SECRET_PARAM_RE.sub(r"\1***", text)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "").strip()
        if len(value) >= 6 and value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the handler's to report
            return True
        safe = redact(message)
        if safe != message:
            record.msg, record.args = safe, None
        return True
