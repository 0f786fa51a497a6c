"""The run's lossless transcript, and the working context the model is shown.

Every message is written to ``transcript.jsonl`` (redacted, flushed, fsynced) as soon as it exists,
so a crash loses nothing and a compacted context can always be expanded again (DESIGN invariants 3
and 9). The context may stand a summary in for a range of originals; the transcript never does.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.agent.messages import Message, ToolCall, message_tokens
from shipyard.errors import ShipyardError
from shipyard.redaction import redact

log = logging.getLogger(__name__)

TRANSCRIPT_FILE = "transcript.jsonl"
_REF = re.compile(r"^m(\d+)(?:\s*-\s*m?(\d+))?$")


class UnknownReference(ShipyardError):
    """A reference (``m12``, ``m3-m9``) names no message of the transcript."""


@dataclass(frozen=True, kw_only=True)
class CompactionMarker:
    """Where the context was compacted: which originals a summary replaced, and the sizes."""

    replaced: tuple[str, ...]
    summary: str
    """The summary message's content, exactly as the model was shown it."""
    tokens_before: int
    tokens_after: int
    fallback: bool = False
    """True when the deterministic gist list stood in for a failed summarising call."""

    @property
    def summary_id(self) -> str:
        return span(self.replaced)


def parse_ref(ref: str) -> tuple[int, int]:
    """``m7`` → (7, 7); ``m3-m9`` → (3, 9). Raises UnknownReference for anything else."""
    match = _REF.match(ref.strip())
    if match is None:
        raise UnknownReference(f"{ref!r} is not a message reference; use one like m7 or m3-m9")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if last < first:
        raise UnknownReference(f"{ref!r} runs backwards; write the range as m{last}-m{first}")
    return first, last


def span(ids: Sequence[str]) -> str:
    """The reference covering ``ids`` (in transcript order): ``m7`` or ``m3-m18``."""
    if not ids:
        raise ValueError("a span needs at least one id")
    return ids[0] if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"


def covered(message: Message) -> list[str]:
    """The original ids a context message stands for: itself, or every id a summary replaced."""
    if "-" not in message.id:
        return [message.id] if message.id else []
    first, last = parse_ref(message.id)
    return [f"m{n}" for n in range(first, last + 1)]


def render(messages: Iterable[Message]) -> str:
    """Messages as a person (or the model, via ``recall``) reads them: id, role, tool, content."""
    parts = []
    for m in messages:
        head = f"[{m.id}] {m.role}" + (f" ({m.name})" if m.name else "")
        calls = "".join(
            f"\n  calls {c.name}({c.raw_arguments or json.dumps(c.arguments)})"
            for c in m.tool_calls
        )
        parts.append(f"{head}:{calls}\n{m.content}".rstrip())
    return "\n\n".join(parts)


def _to_record(message: Message) -> dict[str, Any]:
    return {
        "type": "message",
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "raw_arguments": c.raw_arguments}
            for c in message.tool_calls
        ],
        "tool_call_id": message.tool_call_id,
        "name": message.name,
    }


def _from_record(record: dict[str, Any]) -> Message:
    return Message(
        id=record["id"],
        role=record["role"],
        content=record["content"],
        tool_calls=tuple(ToolCall(**c) for c in record["tool_calls"]),
        tool_call_id=record["tool_call_id"],
        name=record["name"],
    )


class Transcript:
    """An append-only JSON-lines file of every message (``m1``, ``m2``…) and every compaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._messages: list[Message] = []
        self._records: list[Message | CompactionMarker] = []
        self._torn = False

    @classmethod
    def open(cls, path: Path) -> Transcript:
        """The transcript at ``path``: resumed when it exists (ids continue), created otherwise."""
        transcript = cls(path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            _fsync_dir(path.parent)
            return transcript
        text = path.read_text(encoding="utf-8")
        # A torn last record has no newline; the next record must not be glued onto it.
        transcript._torn = bool(text) and not text.endswith("\n")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # Only a write cut short by a crash leaves this; it was never acknowledged.
                log.warning("%s:%d: skipping a torn record", path, number)
                continue
            if record.get("type") == "message":
                transcript._remember(_from_record(record))
            elif record.get("type") == "compaction":
                transcript._records.append(_marker_from_record(record))
        return transcript

    @classmethod
    def for_run(cls, run_dir: Path) -> Transcript:
        return cls.open(run_dir / TRANSCRIPT_FILE)

    def append(self, message: Message) -> Message:
        """Record ``message`` with the next id; returns it as recorded (redacted, id set)."""
        numbered = replace(message, id=f"m{len(self._messages) + 1}")
        record = redact(_to_record(numbered))
        self._write(record)
        stored = _from_record(record)
        self._remember(stored)
        return stored

    def record_compaction(self, marker: CompactionMarker) -> None:
        """Note in the history that the context replaced ``marker.replaced`` by a summary."""
        record = redact(
            {
                "type": "compaction",
                "replaced": list(marker.replaced),
                "summary": marker.summary,
                "tokens_before": marker.tokens_before,
                "tokens_after": marker.tokens_after,
                "fallback": marker.fallback,
            }
        )
        self._write(record)
        self._records.append(_marker_from_record(record))

    def messages(self) -> list[Message]:
        """Every original message, in order."""
        return list(self._messages)

    def compactions(self) -> list[CompactionMarker]:
        return [r for r in self._records if isinstance(r, CompactionMarker)]

    def get(self, ref: str) -> list[Message]:
        """The originals ``ref`` names: ``m12`` or the inclusive range ``m3-m9``."""
        try:
            first, last = parse_ref(ref)
        except UnknownReference as exc:
            raise UnknownReference(f"{exc}; {self._holds()}") from None
        if not self._messages:
            raise UnknownReference(f"no message {ref.strip()} yet: the transcript is empty")
        if first < 1 or last > len(self._messages):
            raise UnknownReference(f"no message {ref.strip()}: {self._holds()}")
        return self._messages[first - 1 : last]

    def _holds(self) -> str:
        count = len(self._messages)
        return f"the transcript holds m1-m{count}" if count else "the transcript is empty"

    def recall(self, ref: str) -> str:
        """``get`` rendered for reading; what the loop hands the ``recall`` tool."""
        return render(self.get(ref))

    def context(self) -> Context:
        """The working context as it stood: originals, with each compaction's summary applied."""
        context = Context()
        for record in self._records:
            if isinstance(record, Message):
                context.add(record)
            else:
                summary = Message(role="user", content=record.summary, id=record.summary_id)
                context.replace_covering(record.replaced, summary)
        return context

    def _remember(self, message: Message) -> None:
        self._messages.append(message)
        self._records.append(message)

    def _write(self, record: dict[str, Any]) -> None:
        stamped = {**record, "at": datetime.now(UTC).isoformat(timespec="milliseconds")}
        line = ("\n" * self._torn + json.dumps(stamped, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        self._torn = False


def _marker_from_record(record: dict[str, Any]) -> CompactionMarker:
    return CompactionMarker(
        replaced=tuple(record["replaced"]),
        summary=record["summary"],
        tokens_before=record["tokens_before"],
        tokens_after=record["tokens_after"],
        fallback=record["fallback"],
    )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Context:
    """What the model is sent: the system message, then originals or summaries standing in for them."""

    messages: list[Message] = field(default_factory=list)

    def add(self, message: Message) -> None:
        self.messages.append(message)

    def tokens(self) -> int:
        return sum(message_tokens(m) for m in self.messages)

    def replace_covering(self, ids: Sequence[str], summary: Message) -> None:
        """Put ``summary`` where the first of ``ids`` stood and drop every message they cover."""
        wanted = set(ids)
        kept: list[Message] = []
        placed = False
        for message in self.messages:
            if covered(message) and set(covered(message)) <= wanted:
                if not placed:
                    kept.append(summary)
                    placed = True
                continue
            kept.append(message)
        self.messages[:] = kept
