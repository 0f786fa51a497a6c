"""Secrets stay on the host: recognisable credentials are masked before anything is recorded.

Applied by the store to every run record and event, so logs, timelines, reports and the API, which are
all rendered from events, never show them (DESIGN invariant 3).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_PATTERNS = [
    re.compile(r"(?<=://)[^/@\s:]+:[^/@\s]+(?=@)"),  # user:password@ in URLs
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"),  # OpenAI / Anthropic keys
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"\bshy_[A-Za-z0-9_-]{20,}"),  # shipyard API tokens
    re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/=-]{16,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
]
# Whole key names only: "tokens_used" or "secret_scanning" are ordinary facts.
_SECRET_KEY = re.compile(
    r"(?i)^(?:\w+[_-])?"
    r"(?:password|passwd|secret|token|api[_-]?key|authorization|credentials?|private[_-]?key)$"
)


def redact_text(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` with credentials masked; values under secret-sounding keys masked whole."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: (MASK if isinstance(k, str) and _SECRET_KEY.match(k) and v else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value
