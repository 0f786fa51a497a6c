"""``recall``: read again, word for word, the messages a compaction summary replaced.

Summaries cite their originals (``m7``, ``m3-m18``); this tool is how the agent follows such a
reference, which is what makes compaction lossless (DESIGN invariant 9). It reads the host-side
transcript only, so it needs no sandbox.
"""

from __future__ import annotations

from typing import Any

from shipyard.agent.messages import ToolSpec
from shipyard.agent.tools.base import Capability, ToolContext, ToolResult
from shipyard.errors import ShipyardError

MAX_CHARS = 20_000
"""How much one call returns; longer recalls are paged with ``offset``."""


class Recall:
    """The ``recall {ref}`` tool over ``ToolContext.recall``, paged so no answer floods the context."""

    spec = ToolSpec(
        name="recall",
        description=(
            "Read earlier messages of this conversation exactly as they were, by the ids that "
            'summaries cite: "m7" for one message, "m3-m9" for a range (inclusive). Long answers '
            "come in pages: pass the offset the previous answer names to read on."
        ),
        parameters={
            "type": "object",
            "properties": {
                "ref": {"type": "string", "description": 'A message id ("m7") or range ("m3-m9").'},
                "offset": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Character to start from, for the next page of a long recall.",
                },
            },
            "required": ["ref"],
            "additionalProperties": False,
        },
    )
    capabilities = frozenset({Capability.READ})
    egress: tuple[str, ...] = ()

    def __init__(self, *, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars

    def call(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        ref = arguments.get("ref")
        offset = arguments.get("offset", 0)
        if not isinstance(ref, str) or not ref.strip():
            return _error('recall needs "ref", a message id like "m7" or a range like "m3-m9".')
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            return _error(
                f'"offset" must be a whole number of characters, 0 or more, not {offset!r}.'
            )
        if ctx.recall is None:
            return _error("recall is not available in this run: it has no transcript.")
        try:
            text = ctx.recall(ref)
        except (ShipyardError, KeyError, ValueError) as exc:
            return _error(str(exc))
        total = len(text)
        if offset and offset >= total:
            return _error(f"{ref} has {total} characters; offset {offset} is past the end.")
        end = min(offset + self.max_chars, total)
        page = text[offset:end]
        if offset or end < total:
            page += f"\n\n[recall {ref}: characters {offset}-{end} of {total}" + (
                f'; call recall with ref "{ref}" and offset {end} for the rest]'
                if end < total
                else "]"
            )
        return ToolResult(content=page, data={"ref": ref, "offset": offset, "chars": total})


def _error(message: str) -> ToolResult:
    return ToolResult(content=f"error: {message}", ok=False)
