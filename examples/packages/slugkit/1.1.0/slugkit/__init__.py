"""URL- and identifier-friendly slugs from free text."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

__version__ = "1.1.0"
__all__ = ["shorten", "slugify", "unique_slug"]

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slugify(text: str, sep: str = "-") -> str:
    """Lower-case ASCII words of ``text`` joined by ``sep``.

    ``slugify("Blue Mug (L)")`` is ``"blue-mug-l"``.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_WORD.sub(sep, ascii_text.lower()).strip(sep)


def unique_slug(text: str, taken: Collection[str], sep: str = "-") -> str:
    """``slugify(text)``, with ``-2``, ``-3``... appended until it is not in ``taken``."""
    base = slugify(text, sep)
    if base not in taken:
        return base
    n = 2
    while f"{base}{sep}{n}" in taken:
        n += 1
    return f"{base}{sep}{n}"


def shorten(slug: str, max_length: int, sep: str = "-") -> str:
    """``slug`` cut to at most ``max_length`` characters, at a separator when there is one.

    New in 1.1.0.
    """
    if len(slug) <= max_length:
        return slug
    cut = slug[:max_length]
    head, found, _ = cut.rpartition(sep)
    return head if found and head else cut
