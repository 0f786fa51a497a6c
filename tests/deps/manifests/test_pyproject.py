"""pyproject.toml: every dependency table is read, and an edit changes only the version text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from shipyard.deps.manifests import Change
from shipyard.deps.manifests.pyproject import Pyproject
from shipyard.errors import DependencyError

from .conftest import FIXTURES

TEXT = (FIXTURES / "pyproject" / "pyproject.toml").read_text(encoding="utf-8")


def change(name: str, version: str, spec: str | None = None, section: str | None = None) -> Change:
    return Change(
        canonical_name=name,
        manifest="pyproject.toml",
        new_version=Version(version),
        new_specifier=spec,
        section=section,
    )


def no_hashes(name: str, version: Version) -> list[str]:
    raise AssertionError("pyproject.toml has no hashes")


def test_every_section_is_read() -> None:
    deps = [
        (d.section, d.name, d.specifier, d.pinned)
        for d in Pyproject(path="pyproject.toml", text=TEXT).dependencies()
    ]
    assert deps == [
        ("project.dependencies", "webkit", ">= 1.0, < 2", None),
        ("project.dependencies", "tinyfmt", "==1.0.0", Version("1.0.0")),
        ("project.dependencies", "colorize", ">=2.0", None),
        ("project.dependencies", "helper", "", None),
        ("project.optional-dependencies.speed", "speedups", "==1.0.0", Version("1.0.0")),
        ("project.optional-dependencies.all", "service", "", None),
        ("project.optional-dependencies.all", "colorize", "==2.0.0", Version("2.0.0")),
        ("dependency-groups.test", "helper", "==1.1.0", Version("1.1.0")),
        ("dependency-groups.lint", "colorize", "~=2.0", None),
        ("tool.pdm.dev-dependencies.docs", "speedups", ">=1.0", None),
        ("tool.poetry.dependencies", "webkit", "^1.0", None),
        ("tool.poetry.dependencies", "tinyfmt", "1.0.0", Version("1.0.0")),
        ("tool.poetry.group.dev.dependencies", "helper", "~1.1", None),
    ]  # the URL dependency, the path dependency and python-dependent alternatives are not updatable
    webkit = Pyproject(path="pyproject.toml", text=TEXT).dependencies()[0]
    assert (webkit.extras, webkit.location) == (("fast",), "pyproject.toml [project.dependencies]")


def test_pins_change_in_every_section_and_nothing_else() -> None:
    manifest = Pyproject(path="pyproject.toml", text=TEXT)
    new = manifest.apply(
        [change("tinyfmt", "1.0.1"), change("speedups", "1.1.0", section="project.optional-dependencies.speed"),
         change("helper", "1.2.0", section="dependency-groups.test")],
        hashes=no_hashes,
    )  # fmt: skip
    expected = (
        TEXT.replace("'tinyfmt==1.0.0',", "'tinyfmt==1.0.1',")
        .replace('tinyfmt = "1.0.0"', 'tinyfmt = "1.0.1"')
        .replace('speed = ["speedups==1.0.0"]', 'speed = ["speedups==1.1.0"]')
        .replace('    "helper==1.1.0",', '    "helper==1.2.0",')
    )
    assert new == expected


def test_ranges_take_new_specifiers_with_extras_markers_and_comments_kept() -> None:
    manifest = Pyproject(path="pyproject.toml", text=TEXT)
    new = manifest.apply(
        [
            change("webkit", "2.0.0", ">=2.0,<3", section="project.dependencies"),
            change("webkit", "2.0.0", "^2.0", section="tool.poetry.dependencies"),
            change("colorize", "2.1.0", ">=2.1", section="project.dependencies"),
        ],
        hashes=no_hashes,
    )
    expected = (
        TEXT.replace('"webkit[fast] >= 1.0, < 2",', '"webkit[fast] >=2.0,<3",')
        .replace(
            '{ version = "^1.0", extras = ["fast"] }', '{ version = "^2.0", extras = ["fast"] }'
        )
        .replace('"colorize>=2.0 ; python_version', '"colorize>=2.1 ; python_version')
    )
    assert new == expected


def test_a_dependency_without_a_constraint_gets_one() -> None:
    new = Pyproject(path="pyproject.toml", text=TEXT).apply(
        [change("helper", "1.2.0", ">=1.2", section="project.dependencies")], hashes=no_hashes
    )
    assert new == TEXT.replace('  "helper",\n', '  "helper>=1.2",\n')


def test_poetry_ranges_that_admit_the_version_stay() -> None:
    manifest = Pyproject(path="pyproject.toml", text=TEXT)
    section = "tool.poetry.group.dev.dependencies"
    assert manifest.apply([change("helper", "1.1.5", section=section)], hashes=no_hashes) == TEXT
    with pytest.raises(DependencyError, match=r"helper = '~1.1' does not admit 1.2.0"):
        manifest.apply([change("helper", "1.2.0", section=section)], hashes=no_hashes)


def test_an_unreadable_item_is_left_alone_and_never_rewritten() -> None:
    text = '[project]\ndependencies = [\n  "webkit>=<1",  # sic\n  "ok==1.0",\n]\n'
    manifest = Pyproject(path="pyproject.toml", text=text)
    assert [d.name for d in manifest.dependencies()] == ["ok"]
    [problem] = manifest.unreadable
    assert problem.location == "pyproject.toml [project.dependencies]"
    assert (problem.name, problem.text) == ("webkit", "webkit>=<1")
    assert "PEP 508" in problem.reason
    edited = manifest.apply([change("ok", "1.1")], hashes=no_hashes)
    assert edited == text.replace("ok==1.0", "ok==1.1")


def test_errors_name_the_file_and_the_fix() -> None:
    with pytest.raises(DependencyError, match=r"pyproject.toml: not valid TOML"):
        Pyproject(path="pyproject.toml", text="[project\n")
    with pytest.raises(DependencyError, match=r"\[project.dependencies\] must be an array"):
        Pyproject(path="pyproject.toml", text='[project]\ndependencies = "webkit"\n').dependencies()
    with pytest.raises(DependencyError, match=r"nosuch is not a dependency here"):
        Pyproject(path="pyproject.toml", text=TEXT).apply([change("nosuch", "1")], hashes=no_hashes)


_version = st.builds(
    lambda *parts: ".".join(map(str, parts)),
    *(st.integers(min_value=0, max_value=20) for _ in range(3)),
)


@st.composite
def _pyprojects(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """A PEP 621 / PEP 735 pyproject with comments, both quote styles and odd spacing."""
    names = draw(
        st.lists(
            st.sampled_from(["webkit", "tinyfmt", "colorize", "helper"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    pins = {n: draw(_version) for n in names}
    items = []
    for name in names:
        quote = draw(st.sampled_from(['"', "'"]))
        extras = draw(st.sampled_from(["", "[fast]"]))
        marker = draw(st.sampled_from(["", "; sys_platform != 'win32'"])) if quote == '"' else ""
        comment = draw(st.sampled_from(["", "  # why", "   # keep"]))
        items.append(f"    {quote}{name}{extras}=={pins[name]}{marker}{quote},{comment}")
    table = draw(st.sampled_from(["[project]\ndependencies", "[dependency-groups]\ntest"]))
    head = draw(
        st.sampled_from(["", "# top comment\n", "[build-system]\nrequires = ['hatchling']\n\n"])
    )
    return head + f"{table} = [\n" + "\n".join(items) + "\n]\n", pins


@settings(deadline=None, max_examples=60)
@given(_pyprojects(), st.data())
def test_changing_a_pin_and_back_gives_the_same_bytes(
    generated: tuple[str, dict[str, str]], data: st.DataObject
) -> None:
    text, pins = generated
    name = data.draw(st.sampled_from(sorted(pins)))
    new = data.draw(_version.filter(lambda v: v != pins[name]))
    changed = Pyproject(path="pyproject.toml", text=text).apply(
        [change(name, new)], hashes=no_hashes
    )
    after = {
        d.name: str(d.pinned) for d in Pyproject(path="pyproject.toml", text=changed).dependencies()
    }
    assert after == {n: str(Version(v)) for n, v in {**pins, name: new}.items()}
    back = Pyproject(path="pyproject.toml", text=changed).apply(
        [change(name, pins[name])], hashes=no_hashes
    )
    assert back == text
