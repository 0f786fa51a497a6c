"""requirements.txt parsing and the byte-exact pin rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from shipyard.deps.requirements import (
    parse_requirements,
    parse_text,
    read_requirements,
    set_pin,
)
from shipyard.errors import DependencyError

SAMPLE = """\
# runtime
Django==4.2.11  # LTS
requests[socks,security] == 2.31.0
typing_extensions==4.9.0 ; python_version < "3.12"
urllib3==2.2.1 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
attrs>=23.1
numpy==1.26.*
-r base.txt
-c constraints.txt
--index-url https://pypi.org/simple
./local/pkg
pkg @ https://example.com/pkg-1.0.tar.gz
weird===1.0
  # indented comment mentioning six==1.0
six==1.16.0
"""


def test_pins_are_exact_versions_with_names_lines_and_file() -> None:
    parsed = parse_text(SAMPLE, file="requirements/prod.txt")
    found = [(p.name, p.canonical_name, str(p.version), p.line_no) for p in parsed.pins]
    assert found == [
        ("Django", "django", "4.2.11", 2),
        ("requests", "requests", "2.31.0", 3),
        ("typing_extensions", "typing-extensions", "4.9.0", 4),
        ("urllib3", "urllib3", "2.2.1", 5),
        ("six", "six", "1.16.0", 17),
    ]
    assert {p.file for p in parsed.pins} == {"requirements/prod.txt"}
    assert all(isinstance(p.version, Version) for p in parsed.pins)


def test_everything_else_is_listed_as_not_updatable() -> None:
    other = parse_text(SAMPLE).not_updatable
    assert [o.line_no for o in other] == [8, 9, 10, 11, 12, 13, 14, 15]
    assert other[0].text == "attrs>=23.1"
    assert other[1].text == "numpy==1.26.*"
    assert other[-1].text == "weird===1.0"


def test_hash_continuation_lines_are_not_pins_or_other_lines() -> None:
    text = "a==1.0 \\\n    --hash=sha256:00\nb==2.0\n"
    parsed = parse_text(text)
    assert [(p.name, p.line_no) for p in parsed.pins] == [("a", 1), ("b", 3)]
    assert parsed.not_updatable == ()


def test_read_from_a_file_names_it_relative_to_the_repository(tmp_path: Path) -> None:
    path = tmp_path / "reqs" / "dev.txt"
    path.parent.mkdir()
    path.write_bytes(b"pytest==9.2.0\r\ncoverage==7.17.3\r\n")
    pins = parse_requirements(path, relative_to=tmp_path)
    assert [(p.name, str(p.version), p.file) for p in pins] == [
        ("pytest", "9.2.0", "reqs/dev.txt"),
        ("coverage", "7.17.3", "reqs/dev.txt"),
    ]
    assert read_requirements(path).pins[0].file == "dev.txt"


def test_an_unreadable_file_is_a_dependency_error(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_bytes(b"\xff\xfe==1\n")
    with pytest.raises(DependencyError, match=r"requirements\.txt: cannot be read"):
        parse_requirements(path)


def test_set_pin_changes_only_the_version_bytes() -> None:
    new = set_pin(SAMPLE, "django", "4.2.12")
    assert new == SAMPLE.replace("Django==4.2.11", "Django==4.2.12")


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("requests", "requests[socks,security] == 2.31.0", "requests[socks,security] == 2.32.3"),
        ("Typing.Extensions", 'typing_extensions==4.9.0 ; python_version < "3.12"',
         'typing_extensions==4.12.2 ; python_version < "3.12"'),
        ("URLLIB3", "urllib3==2.2.1 \\", "urllib3==2.2.3 \\"),
    ],
)  # fmt: skip
def test_set_pin_keeps_extras_markers_continuations_and_name_spelling(
    name: str, old: str, new: str
) -> None:
    version = new.split("==")[1].strip().split()[0]
    assert set_pin(SAMPLE, name, version) == SAMPLE.replace(old, new)


def test_set_pin_keeps_crlf_comments_and_a_missing_final_newline() -> None:
    text = b"# pinned\r\nalpha==1.0.0   # keep me\r\n\r\nbeta==0.3.0".decode()
    out = set_pin(text, "alpha", "1.1.0").encode()
    assert out == b"# pinned\r\nalpha==1.1.0   # keep me\r\n\r\nbeta==0.3.0"
    assert set_pin(text, "beta", "0.4.0").encode().endswith(b"\r\n\r\nbeta==0.4.0")


def test_set_pin_does_not_touch_comments_or_continuation_lines() -> None:
    text = "# six==1.0\nsix==1.16.0 \\\n    --hash=sha256:00\n"
    assert set_pin(text, "six", "1.17.0") == "# six==1.0\nsix==1.17.0 \\\n    --hash=sha256:00\n"


def test_set_pin_of_an_unpinned_or_ranged_package_fails() -> None:
    with pytest.raises(DependencyError, match="no `attrs==…` pin"):
        set_pin(SAMPLE, "attrs", "24.1.0")
    with pytest.raises(DependencyError, match="no `flask==…` pin"):
        set_pin(SAMPLE, "flask", "3.0.0")


def test_set_pin_needs_a_valid_version() -> None:
    with pytest.raises(DependencyError, match="not a valid version"):
        set_pin(SAMPLE, "six", "1.17; rm -rf /")


def test_set_pin_with_two_pins_of_one_name_asks_for_the_line() -> None:
    text = 'a==1.0; python_version<"3.12"\na==2.0; python_version>="3.12"\n'
    with pytest.raises(DependencyError, match="pinned on lines 1, 2"):
        set_pin(text, "a", "2.1")
    assert set_pin(text, "a", "2.1", line_no=2) == text.replace("a==2.0", "a==2.1")


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,6}([._-][A-Za-z0-9]{1,4})?", fullmatch=True)
_versions = st.builds(
    lambda parts: ".".join(str(p) for p in parts),
    st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=4),
)
_noise = st.sampled_from(
    ["", "# a comment", "   ", "attrs>=1", "-r other.txt", "--index-url https://x/simple"]
)


@settings(max_examples=200, deadline=None)
@given(
    name=_names,
    old=_versions,
    new=_versions,
    before=st.lists(_noise, max_size=4),
    after=st.lists(_noise, max_size=4),
    newline=st.sampled_from(["\n", "\r\n"]),
    spacing=st.sampled_from(["==", " == ", "=="]),
    tail=st.sampled_from(
        ["", "  # pinned", ' ; python_version >= "3.8"', " \\\n  --hash=sha256:0"]
    ),
)
def test_set_pin_rewrites_exactly_the_version(
    name: str, old: str, new: str, before: list[str], after: list[str], newline: str,
    spacing: str, tail: str,
) -> None:  # fmt: skip
    pin_line = f"{name}{spacing}{old}{tail}"
    text = newline.join([*before, pin_line, *after]) + newline
    out = set_pin(text, name.upper(), new)
    assert out == newline.join([*before, f"{name}{spacing}{new}{tail}", *after]) + newline
    [pin] = parse_text(out).pins
    assert pin.version == Version(new)
    assert pin.line_no == len(before) + 1
