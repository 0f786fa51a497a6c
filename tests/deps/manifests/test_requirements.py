"""Requirements files: read every shape of line, and change versions leaving every other byte alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from shipyard.deps.manifests import Change
from shipyard.deps.manifests.requirements import RequirementsFile
from shipyard.errors import DependencyError

from .conftest import FIXTURES, sha256s

REQ = FIXTURES / "requirements"
COMPILED = FIXTURES / "pip-compile"


def load(path: Path, name: str | None = None, *, crlf: bool = False) -> RequirementsFile:
    text = path.read_text(encoding="utf-8")
    return RequirementsFile(
        path=name or path.name, text=text.replace("\n", "\r\n") if crlf else text
    )


def change(name: str, version: str, manifest: str, spec: str | None = None) -> Change:
    return Change(
        canonical_name=name, manifest=manifest, new_version=Version(version), new_specifier=spec
    )


def no_hashes(name: str, version: Version) -> list[str]:
    raise AssertionError(f"hashes asked for {name} {version}, which has no --hash")


def test_every_requirement_shape_is_read_with_its_text_as_written() -> None:
    deps = {d.name: d for d in load(REQ / "requirements.txt").dependencies()}
    assert sorted(deps) == ["colorize", "helper", "speedups", "tinyfmt", "webkit"]
    webkit = deps["webkit"]
    assert (webkit.specifier, webkit.pinned, webkit.extras) == (
        "== 1.0.0",
        Version("1.0.0"),
        ("fast",),
    )
    assert webkit.location == "requirements.txt:8"
    tinyfmt = deps["tinyfmt"]
    assert (tinyfmt.specifier, tinyfmt.pinned) == (">=0.9,<1.1", None)
    assert tinyfmt.marker == 'python_version >= "3.9" and sys_platform != "win32"'
    assert deps["colorize"].specifier == "==2.0.0"
    assert deps["colorize"].marker == 'python_version < "4"'
    assert (deps["helper"].pinned, deps["helper"].line) == (Version("1.1.0"), 11)
    assert deps["speedups"].pinned is None  # === is arbitrary equality, not a comparable pin
    assert not any(d.hashed for d in deps.values())


def test_includes_and_constraints_are_listed() -> None:
    manifest = load(REQ / "requirements.txt")
    assert [(i.path, i.constraint, i.line) for i in manifest.includes] == [
        ("requirements/base.txt", False, 3),
        ("constraints.txt", True, 4),
    ]


@pytest.mark.parametrize("crlf", [False, True])
def test_a_pin_changes_and_nothing_else(crlf: bool) -> None:
    manifest = load(REQ / "requirements.txt", crlf=crlf)
    new = manifest.apply(
        [
            change("webkit", "1.1.0", "requirements.txt"),
            change("helper", "1.2.0", "requirements.txt"),
        ],
        hashes=no_hashes,
    )
    expected = manifest.text.replace("webkit[fast] == 1.0.0", "webkit[fast] == 1.1.0")
    expected = expected.replace("    ==1.1.0", "    ==1.2.0")  # the continued line of helper
    assert new == expected
    assert new.count("\r\n") == (manifest.text.count("\r\n"))


def test_a_range_takes_a_new_specifier_and_keeps_its_marker() -> None:
    manifest = load(REQ / "requirements.txt")
    new = manifest.apply(
        [change("tinyfmt", "1.2.0", "requirements.txt", ">=1.2,<1.3")], hashes=no_hashes
    )
    assert new == manifest.text.replace(
        'tinyfmt>=0.9,<1.1 ; python_version >= "3.9"', 'tinyfmt>=1.2,<1.3 ; python_version >= "3.9"'
    )


def test_a_range_that_already_admits_the_version_is_left_as_written() -> None:
    manifest = load(REQ / "requirements.txt")
    assert (
        manifest.apply([change("tinyfmt", "1.0.1", "requirements.txt")], hashes=no_hashes)
        == manifest.text
    )


def test_a_range_that_excludes_the_version_needs_a_specifier() -> None:
    manifest = load(REQ / "requirements.txt")
    with pytest.raises(
        DependencyError, match=r"requirements.txt:9: tinyfmt>=0.9,<1.1 does not admit 2.0"
    ):
        manifest.apply([change("tinyfmt", "2.0", "requirements.txt")], hashes=no_hashes)


def test_a_change_for_a_missing_package_names_file_and_fix() -> None:
    manifest = load(REQ / "requirements.txt")
    with pytest.raises(
        DependencyError, match=r"requirements.txt: nosuch is not a requirement here"
    ):
        manifest.apply([change("nosuch", "1.0", "requirements.txt")], hashes=no_hashes)


def test_changes_for_other_files_are_ignored() -> None:
    manifest = load(REQ / "requirements.txt")
    assert manifest.apply([change("webkit", "9", "other.txt")], hashes=no_hashes) == manifest.text


@pytest.mark.parametrize("crlf", [False, True])
def test_pip_compile_hashes_are_replaced_with_the_new_versions(
    manifest_dists: Path, crlf: bool
) -> None:
    manifest = load(COMPILED / "requirements-hashes.txt", crlf=crlf)
    deps = {d.name: d for d in manifest.dependencies()}
    assert all(d.hashed for d in deps.values())
    assert deps["webkit"].extras == ("fast",)
    assert deps["colorize"].marker == 'python_version >= "3.9"'
    new = manifest.apply(
        [
            change("webkit", "1.1.0", manifest.path),
            change("colorize", "2.1.0", manifest.path),
        ],
        hashes=lambda n, v: sha256s(manifest_dists, n, str(v)),
    )
    old_webkit, new_webkit = (sha256s(manifest_dists, "webkit", v)[0] for v in ("1.0.0", "1.1.0"))
    old_color, new_color = (sha256s(manifest_dists, "colorize", v)[0] for v in ("2.0.0", "2.1.0"))
    expected = (
        manifest.text.replace("webkit[fast]==1.0.0", "webkit[fast]==1.1.0")
        .replace(old_webkit, new_webkit)
        .replace(
            'colorize==2.0.0 ; python_version >= "3.9"', 'colorize==2.1.0 ; python_version >= "3.9"'
        )
        .replace(old_color, new_color)
    )
    assert new == expected


def test_hand_written_hashes_inline_with_comments_and_several_per_line(
    manifest_dists: Path,
) -> None:
    manifest = load(REQ / "hand-hashed.txt")
    assert all(d.hashed for d in manifest.dependencies())
    hashes = {
        ("webkit", "1.1.0"): ["b" * 64, "a" * 64],
        ("tinyfmt", "1.0.1"): ["c" * 64],
        ("colorize", "2.1.0"): ["sha256:" + "d" * 64],
    }
    new = manifest.apply(
        [
            change("webkit", "1.1.0", manifest.path),
            change("tinyfmt", "1.0.1", manifest.path),
            change("colorize", "2.1.0", manifest.path),
        ],
        hashes=lambda n, v: hashes[(n, str(v))],
    )
    assert new == (
        "# Hashes checked by hand with `pip hash`.\n"
        'webkit[fast]==1.1.0 ; python_version >= "3.9" \\\n'
        f"    --hash=sha256:{'a' * 64} \\\n"  # a hash per line, as it was: the comment stays last
        f"    --hash=sha256:{'b' * 64}  # pinned for the session API\n"
        f"tinyfmt==1.0.1 --hash=sha256:{'c' * 64}  # two files\n"
        "    # a comment between requirements\n"
        "colorize==2.1.0 \\\n"
        f"    --hash=sha256:{'d' * 64}\n"
    )


def test_a_hashed_requirement_without_index_hashes_is_an_error() -> None:
    manifest = load(REQ / "hand-hashed.txt")
    with pytest.raises(
        DependencyError, match=r"hand-hashed.txt:6: colorize 2.1.0 has no file hashes"
    ):
        manifest.apply([change("colorize", "2.1.0", manifest.path)], hashes=lambda n, v: [])


def test_an_unreadable_requirement_is_left_alone_naming_file_line_and_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Celery 5.2.7's requirements/dev.txt starts with `pytz>dev`: pip refuses it, the rest is fine.
    text = "pytz>dev\r\nok==1.0  # keep\r\nwebkit>=<1 ; python_version < '3'\r\nlast==2.0\r\n"
    manifest = RequirementsFile(path="requirements/dev.txt", text=text)
    assert [d.name for d in manifest.dependencies()] == ["ok", "last"]
    assert [(u.location, u.name, u.text) for u in manifest.unreadable] == [
        ("requirements/dev.txt:1", "pytz", "pytz>dev"),
        ("requirements/dev.txt:3", "webkit", "webkit>=<1 ; python_version < '3'"),
    ]
    assert "PEP 508" in manifest.unreadable[0].reason
    assert "requirements/dev.txt:1: cannot read requirement 'pytz>dev'" in caplog.text
    edited = manifest.apply(
        [change("ok", "1.1", manifest.path), change("last", "2.1", manifest.path)],
        hashes=no_hashes,
    )
    assert edited == text.replace("ok==1.0", "ok==1.1").replace("last==2.0", "last==2.1")
    with pytest.raises(DependencyError, match=r"pytz is not a requirement here"):
        manifest.apply([change("pytz", "2024.1", manifest.path)], hashes=no_hashes)


# -- properties

_names = st.sampled_from(["webkit", "Tiny_Fmt", "colorize", "helper.x", "a-b"])
_versions = st.builds(
    lambda a, b, c: f"{a}.{b}.{c}", *(st.integers(min_value=0, max_value=30) for _ in range(3))
)
_digests = st.lists(
    st.text("0123456789abcdef", min_size=64, max_size=64), min_size=1, max_size=3, unique=True
)


@st.composite
def _requirement(draw: st.DrawFn, name: str) -> tuple[str, str, list[str]]:
    """One requirement's text, its version and its (sorted) hashes."""
    version = draw(_versions)
    extras = draw(st.sampled_from(["", "[fast]", "[a,b]"]))
    space = draw(st.sampled_from(["", " "]))
    marker = draw(st.sampled_from(["", ' ; python_version >= "3.9"', "; sys_platform != 'win32'"]))
    comment = draw(st.sampled_from(["", "  # why", "\t# pinned"]))
    hashes = sorted(f"sha256:{d}" for d in draw(_digests)) if draw(st.booleans()) else []
    head = f"{name}{extras}{space}=={space}{version}{marker}"
    if not hashes:
        return head + comment, version, []
    if draw(st.booleans()):  # pip-compile layout
        lines = [head + " \\"] + [f"    --hash={h} \\" for h in hashes]
        lines[-1] = lines[-1].removesuffix(" \\") + comment
        return "\n".join(lines), version, hashes
    return head + " " + " ".join(f"--hash={h}" for h in hashes) + comment, version, hashes


@st.composite
def _files(draw: st.DrawFn) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    names = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    parts, facts = [], {}
    for name in names:
        if draw(st.booleans()):
            parts.append(
                draw(
                    st.sampled_from(
                        ["# a comment", "", "-r other.txt", "--index-url https://x/simple"]
                    )
                )
            )
        text, version, hashes = draw(_requirement(name))
        parts.append(text)
        facts[name] = (version, hashes)
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return eol.join(parts) + draw(st.sampled_from(["", eol])), facts


@settings(max_examples=80, deadline=None)
@given(_files(), st.data())
def test_changing_a_version_and_back_gives_the_same_bytes(
    generated: tuple[str, dict[str, tuple[str, list[str]]]], data: st.DataObject
) -> None:
    text, facts = generated
    name = data.draw(st.sampled_from(sorted(facts)))
    old_version, old_hashes = facts[name]
    new_version = data.draw(_versions.filter(lambda v: v != old_version))
    new_hashes = data.draw(_digests)
    manifest = RequirementsFile(path="r.txt", text=text)

    changed = manifest.apply([change(name, new_version, "r.txt")], hashes=lambda n, v: new_hashes)
    after = {d.name: d for d in RequirementsFile(path="r.txt", text=changed).dependencies()}
    assert after[name].pinned == Version(new_version)
    assert all(after[n].pinned == Version(v) for n, (v, _) in facts.items() if n != name)

    back = RequirementsFile(path="r.txt", text=changed).apply(
        [change(name, old_version, "r.txt")], hashes=lambda n, v: old_hashes
    )
    if len(new_hashes) == len(old_hashes) or not old_hashes:
        assert back == text
    else:  # the number of hash lines changed; the requirement is the same, the rest byte-equal
        assert RequirementsFile(path="r.txt", text=back).dependencies() == manifest.dependencies()
