"""The transcript keeps every message, redacted and on disk, and reads back by reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.agent.messages import Message, ToolCall, message_tokens
from shipyard.agent.transcript import (
    TRANSCRIPT_FILE,
    CompactionMarker,
    Context,
    Transcript,
    UnknownReference,
    covered,
    parse_ref,
    render,
)
from shipyard.errors import ShipyardError
from shipyard.redaction import MASK

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def conversation() -> list[Message]:
    call = ToolCall(
        id="call_1",
        name="read_file",
        arguments={"path": "src/app.py"},
        raw_arguments='{"path": "src/app.py"}',
    )
    return [
        Message(role="system", content="You are a careful engineer."),
        Message(role="user", content="Fix the failing test in tests/test_app.py."),
        Message(role="assistant", content="Reading the module first.", tool_calls=(call,)),
        Message(
            role="tool",
            content="def add(a, b):\n    return a - b\n",
            tool_call_id="call_1",
            name="read_file",
        ),
        Message(role="assistant", content="The sign is wrong; fixing it."),
    ]


def test_append_numbers_messages_and_reopening_gives_them_back(tmp_path: Path) -> None:
    transcript = Transcript.for_run(tmp_path)
    recorded = [transcript.append(m) for m in conversation()]

    assert [m.id for m in recorded] == ["m1", "m2", "m3", "m4", "m5"]
    assert [m.content for m in recorded] == [m.content for m in conversation()]
    assert recorded[2].tool_calls == conversation()[2].tool_calls
    assert recorded[3].tool_call_id == "call_1"
    assert recorded[3].name == "read_file"
    assert transcript.messages() == recorded

    reopened = Transcript.open(tmp_path / TRANSCRIPT_FILE)
    assert reopened.messages() == recorded
    more = reopened.append(Message(role="user", content="Also update the changelog."))
    assert more.id == "m6"
    assert [m.id for m in Transcript.open(tmp_path / TRANSCRIPT_FILE).messages()][-2:] == [
        "m5",
        "m6",
    ]


def test_records_are_on_disk_for_another_process_as_soon_as_append_returns(tmp_path: Path) -> None:
    transcript = Transcript.for_run(tmp_path)
    for message in conversation():
        transcript.append(message)
    reader = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from shipyard.agent.transcript import Transcript\n"
        "t = Transcript.open(Path(sys.argv[1]))\n"
        "print(json.dumps([[m.id, m.role, m.content] for m in t.messages()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", reader, str(tmp_path / TRANSCRIPT_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == [[m.id, m.role, m.content] for m in transcript.messages()]


def test_another_process_resumes_where_this_one_stopped(tmp_path: Path) -> None:
    writer = (
        "import sys\n"
        "from pathlib import Path\n"
        "from shipyard.agent.messages import Message\n"
        "from shipyard.agent.transcript import Transcript\n"
        "t = Transcript.open(Path(sys.argv[1]))\n"
        "print(t.append(Message(role='assistant', content='written elsewhere')).id)\n"
    )
    transcript = Transcript.for_run(tmp_path)
    transcript.append(Message(role="user", content="task"))
    out = subprocess.run(
        [sys.executable, "-c", writer, str(tmp_path / TRANSCRIPT_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "m2"
    assert Transcript.open(tmp_path / TRANSCRIPT_FILE).get("m2")[0].content == "written elsewhere"


def test_references_name_single_messages_and_inclusive_ranges(tmp_path: Path) -> None:
    transcript = Transcript.for_run(tmp_path)
    for message in conversation():
        transcript.append(message)

    assert [m.id for m in transcript.get("m3")] == ["m3"]
    assert [m.id for m in transcript.get("m2-m4")] == ["m2", "m3", "m4"]
    assert [m.id for m in transcript.get(" m4 - m5 ")] == ["m4", "m5"]
    assert [m.id for m in transcript.get("m1-3")] == ["m1", "m2", "m3"]
    assert parse_ref("m3-m9") == (3, 9)


@pytest.mark.parametrize("ref", ["m9", "m0", "m4-m6", "x7", "m", "m5-m2", ""])
def test_unknown_references_say_which_messages_exist(tmp_path: Path, ref: str) -> None:
    transcript = Transcript.for_run(tmp_path)
    for message in conversation():
        transcript.append(message)
    with pytest.raises(UnknownReference, match="the transcript holds m1-m5") as caught:
        transcript.get(ref)
    assert isinstance(caught.value, ShipyardError)


def test_an_empty_transcript_says_so(tmp_path: Path) -> None:
    with pytest.raises(UnknownReference, match="empty"):
        Transcript.for_run(tmp_path).get("m1")


def test_secrets_in_tool_results_and_calls_never_reach_the_file(tmp_path: Path) -> None:
    transcript = Transcript.for_run(tmp_path)
    call = ToolCall(
        id="c1",
        name="run_command",
        arguments={"command": f"curl -H 'Authorization: token {SECRET}' x", "api_key": "hunter2"},
        raw_arguments=f'{{"command": "echo {SECRET}"}}',
    )
    transcript.append(Message(role="assistant", tool_calls=(call,)))
    stored = transcript.append(
        Message(
            role="tool", content=f"GITHUB_TOKEN={SECRET}\nok", tool_call_id="c1", name="run_command"
        )
    )

    raw = (tmp_path / TRANSCRIPT_FILE).read_text()
    assert SECRET not in raw
    assert "hunter2" not in raw
    assert stored.content == f"GITHUB_TOKEN={MASK}\nok"
    # What the loop puts in the context is what the transcript holds, masked alike.
    assert SECRET not in render(transcript.messages())
    assert SECRET not in render(Transcript.for_run(tmp_path).messages())


def test_compaction_markers_are_recorded_and_the_context_rebuilds_from_them(tmp_path: Path) -> None:
    transcript = Transcript.for_run(tmp_path)
    for message in conversation():
        transcript.append(message)
    marker = CompactionMarker(
        replaced=("m3", "m4"),
        summary="[summary of m3-m4] read src/app.py",
        tokens_before=120,
        tokens_after=60,
    )
    transcript.record_compaction(marker)
    transcript.append(Message(role="user", content="carry on"))

    reopened = Transcript.open(tmp_path / TRANSCRIPT_FILE)
    assert reopened.compactions() == [marker]
    assert [m.id for m in reopened.messages()] == ["m1", "m2", "m3", "m4", "m5", "m6"]
    context = reopened.context()
    assert [m.id for m in context.messages] == ["m1", "m2", "m3-m4", "m5", "m6"]
    assert context.messages[2].content == marker.summary
    assert covered(context.messages[2]) == ["m3", "m4"]
    types = [
        json.loads(line)["type"] for line in (tmp_path / TRANSCRIPT_FILE).read_text().splitlines()
    ]
    assert types == ["message"] * 5 + ["compaction", "message"]


def test_a_record_torn_by_a_crash_is_skipped_and_appending_goes_on(tmp_path: Path) -> None:
    transcript = Transcript.for_run(tmp_path)
    transcript.append(Message(role="user", content="task"))
    with (tmp_path / TRANSCRIPT_FILE).open("a") as f:
        f.write('{"type": "message", "id": "m2", "role": "assis')

    resumed = Transcript.open(tmp_path / TRANSCRIPT_FILE)
    assert resumed.append(Message(role="assistant", content="again")).id == "m2"
    assert [m.content for m in Transcript.open(tmp_path / TRANSCRIPT_FILE).messages()] == [
        "task",
        "again",
    ]


def test_render_shows_id_role_tool_and_content() -> None:
    messages = [Message(**{**m.__dict__, "id": f"m{i}"}) for i, m in enumerate(conversation(), 1)]
    text = render(messages[2:4])
    assert text == (
        '[m3] assistant:\n  calls read_file({"path": "src/app.py"})\nReading the module first.\n\n'
        "[m4] tool (read_file):\ndef add(a, b):\n    return a - b"
    )


def test_context_tokens_are_the_sum_of_its_messages() -> None:
    context = Context()
    for message in conversation():
        context.add(message)
    assert context.tokens() == sum(message_tokens(m) for m in conversation())
