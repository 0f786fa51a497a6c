"""The static gate on real trees with real ruff, mypy and bandit in a real sandbox.

Each planted defect is caught against a clean baseline, and its clean twin passes; what was already
wrong at the baseline, moved down by an insertion or carried along by a rename is not blamed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.config import GatesConfig, StaticGateConfig
from shipyard.gates.base import ChangeView, GateContext
from shipyard.gates.environment import gate_limits, install, python_env, sandbox_python
from shipyard.gates.static import StaticGate, introduced, parse_semgrep, plan, suppressions
from shipyard.model import ChangedFile, Finding, GateResult
from shipyard.sandbox import BwrapSandbox
from tests.conftest import example_index, needs_bwrap

pytestmark = [needs_bwrap, pytest.mark.slow]

PYPROJECT = '[tool.ruff.lint]\nselect = ["E", "F"]\n\n[tool.mypy]\nwarn_unused_configs = true\n'
APP = '''"""The example application."""

import json
import os
import subprocess


def width(text: str) -> int:
    return text


def listing(folder: str) -> int:
    return subprocess.call("ls " + folder, shell=True)


def parse(text: str) -> object:
    return json.loads(text)
'''
TESTS = """import subprocess


def test_listing() -> None:
    subprocess.run("ls", shell=True, check=True)
"""
BASE = {"pyproject.toml": PYPROJECT, "pkg/__init__.py": "", "pkg/app.py": APP}
BASE["tests/test_app.py"] = TESTS
BASE_COUNTS = {"ruff": 1, "mypy": 1, "bandit": 1}  # os unused, width's return, listing's shell


def edit(path: str, old: str, new: str) -> Callable[[dict[str, str]], None]:
    def apply(files: dict[str, str]) -> None:
        assert old in files[path]
        files[path] = files[path].replace(old, new, 1)

    return apply


def append(path: str, text: str) -> Callable[[dict[str, str]], None]:
    end = "return json.loads(text)\n"
    return edit(path, end, end + text)


def rename(old: str, new: str) -> Callable[[dict[str, str]], None]:
    def apply(files: dict[str, str]) -> None:
        files[new] = files.pop(old)

    return apply


NEW_IMPORT = "import subprocess\n"
TREES: dict[str, list[Callable[[dict[str, str]], None]]] = {
    "base": [],
    "lint": [edit("pkg/app.py", NEW_IMPORT, NEW_IMPORT + "import sys\n")],
    "lint-clean": [
        edit("pkg/app.py", NEW_IMPORT, NEW_IMPORT + "import sys\n"),
        append("pkg/app.py", "\n\ndef arguments() -> list[str]:\n    return sys.argv\n"),
    ],
    "type": [append("pkg/app.py", "\n\ndef half(n: int) -> str:\n    return n // 2\n")],
    "type-clean": [append("pkg/app.py", "\n\ndef half(n: int) -> int:\n    return n // 2\n")],
    "shell": [
        append(
            "pkg/app.py",
            "\n\ndef run(user_input: str) -> None:\n    subprocess.run(user_input, shell=True)\n",
        )
    ],
    "shell-clean": [
        append(
            "pkg/app.py",
            "\n\ndef run(user_input: str) -> None:\n"
            '    subprocess.run(["echo", user_input], check=False)\n',
        )
    ],
    "moved": [edit("pkg/app.py", "\n\ndef width", '\nLIMIT = 10\nNAME = "app"\n\n\ndef width')],
    "renamed": [rename("pkg/app.py", "pkg/core.py")],
    "duplicate": [
        append(
            "pkg/app.py",
            "\n\ndef listing_again(folder: str) -> int:\n"
            '    return subprocess.call("ls " + folder, shell=True)\n',
        )
    ],
    "no-mypy": [
        edit("pyproject.toml", "[tool.mypy]\nwarn_unused_configs = true\n", ""),
        append("pkg/app.py", "\n\ndef half(n: int) -> str:\n    return n // 2\n"),
    ],
    "broken": [
        edit(
            "pyproject.toml",
            "[tool.ruff.lint]",
            '[tool.ruff]\nline-length = "long"\n\n[tool.ruff.lint]',
        ),
        edit("pyproject.toml", "[tool.mypy]", "[tool.bandit]\nskips = 3\n\n[tool.mypy]"),
    ],
}


def files_of(name: str) -> dict[str, str]:
    files = dict(BASE)
    for change in TREES[name]:
        change(files)
    return files


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def view_between(before: str, after: str, renames: bool = True) -> ChangeView:
    old, new = files_of(before), files_of(after)
    moved = {n: o for n in new for o in old if renames and o not in new and n not in old}
    changed = []
    for path in sorted(set(old) | set(new)):
        source = moved.get(path, path)
        if old.get(source) != new.get(path) or source != path:
            changed.append(
                ChangedFile(path=path, before=old.get(source), after=new.get(path), old_path=source)
            )
    return ChangeView.of(changed)


def context(tree: Path, scratch: Path, **static: object) -> GateContext:
    config = GatesConfig(static=StaticGateConfig.model_validate({"timeout_seconds": 120, **static}))
    return GateContext(
        tree=tree, scratch=scratch, wheelhouse=scratch, sandbox=BwrapSandbox(),
        config=config, phase="change",
    )  # fmt: skip


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], GateResult]:
    """Each tree written and measured once for the whole module."""
    cache: dict[str, GateResult] = {}

    def measure(name: str) -> GateResult:
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            tree = write(root / "tree", files_of(name))
            (root / "scratch").mkdir()
            cache[name] = StaticGate().measure(context(tree, root / "scratch"))
        return cache[name]

    return measure


def verdict(measured: Callable[[str], GateResult], name: str, renames: bool = True) -> GateResult:
    view = view_between("base", name, renames)
    return StaticGate().compare(measured("base"), measured(name), view)


def test_the_baseline_is_measured_with_each_tool_and_the_projects_config(
    measured: Callable[[str], GateResult],
) -> None:
    base = measured("base")
    tools = base.facts["tools"]
    assert {t: tools[t]["count"] for t in BASE_COUNTS} == BASE_COUNTS, base.details
    assert not base.facts["errors"]
    assert not base.passed
    assert tools["semgrep"] == {"ran": False, "reason": "no local rules (.semgrep.yml, .semgrep)"}
    by_tool = {f["tool"]: f for f in base.facts["findings"]}
    assert by_tool["ruff"]["code"] == "F401"
    assert by_tool["ruff"]["snippet"] == "import os"
    assert by_tool["mypy"]["code"] == "return-value"
    assert by_tool["mypy"]["path"] == "pkg/app.py"
    assert by_tool["bandit"]["code"] == "B602"
    assert by_tool["bandit"]["line"] == 13
    # tests/ is left out of bandit's scan, so its shell=True is not reported
    assert all(f["path"] == "pkg/app.py" for f in base.facts["findings"])


@pytest.mark.parametrize(
    ("planted", "tool", "code", "snippet"),
    [
        ("lint", "ruff", "F401", "import sys"),
        ("type", "mypy", "return-value", "return n // 2"),
        ("shell", "bandit", "B602", "subprocess.run(user_input, shell=True)"),
    ],
)
def test_a_planted_defect_is_caught_and_its_clean_twin_passes(
    measured: Callable[[str], GateResult], planted: str, tool: str, code: str, snippet: str
) -> None:
    caught = verdict(measured, planted)
    assert not caught.passed
    assert caught.facts["introduced"] == 1
    assert caught.facts["existing"] == 3
    [finding] = caught.facts["findings"]
    assert (finding["tool"], finding["code"], finding["snippet"]) == (tool, code, snippet)
    assert caught.summary == f"1 new finding ({tool} {code}); 3 existing not counted"
    assert any(snippet in line for line in caught.details)

    twin = verdict(measured, f"{planted}-clean")
    assert twin.passed, twin.details
    assert twin.facts["introduced"] == 0
    assert twin.facts["existing"] == 3
    assert twin.summary == "0 new findings; 3 existing not counted"


def test_findings_moved_down_by_an_insertion_are_not_blamed(
    measured: Callable[[str], GateResult],
) -> None:
    def lines(name: str) -> list[int]:
        return sorted(f["line"] for f in measured(name).facts["findings"])

    assert (lines("base"), lines("moved")) == ([4, 9, 13], [4, 12, 16])
    result = verdict(measured, "moved")
    assert result.passed
    assert result.facts["existing"] == 3
    assert result.facts["fixed"] == 0


def test_a_renamed_file_keeps_its_findings(measured: Callable[[str], GateResult]) -> None:
    result = verdict(measured, "renamed")
    assert result.passed, result.details
    assert result.facts["existing"] == 3
    unmapped = verdict(measured, "renamed", renames=False)
    assert unmapped.facts["introduced"] == 3
    assert unmapped.facts["fixed"] == 3


def test_a_second_copy_of_an_existing_finding_is_new(
    measured: Callable[[str], GateResult],
) -> None:
    result = verdict(measured, "duplicate")
    assert not result.passed
    [finding] = result.facts["findings"]
    assert (finding["code"], finding["line"]) == ("B602", 21)
    assert result.facts["existing"] == 3


def test_mypy_is_not_run_when_the_project_does_not_configure_it(
    measured: Callable[[str], GateResult],
) -> None:
    result = measured("no-mypy")
    assert result.facts["tools"]["mypy"] == {
        "ran": False,
        "reason": "the repository does not configure mypy",
    }
    assert not any(f["tool"] == "mypy" for f in result.facts["findings"])
    assert "mypy not run: the repository does not configure mypy" in result.details
    # the baseline ran mypy: its type error is gone with the tool, nothing new is blamed
    assert verdict(measured, "no-mypy").passed


def test_a_broken_tool_configuration_fails_the_gate_instead_of_passing(
    measured: Callable[[str], GateResult],
) -> None:
    broken = measured("broken")
    assert broken.facts["tools"]["ruff"]["error"]
    assert broken.facts["tools"]["bandit"]["error"]
    assert [e.split(":")[0] for e in broken.facts["errors"]] == [
        "ruff could not run",
        "bandit could not run",
    ]
    result = verdict(measured, "broken")
    assert not result.passed
    assert result.facts["introduced"] == 0
    assert result.summary == (
        "bandit and ruff could not run (see details); 0 new findings; 1 existing not counted"
    )
    [ruff, bandit] = result.details[:2]
    assert ruff.startswith("ruff could not run: exit code 2: ruff failed | Cause: Failed to parse")
    assert 'invalid type: string "long"' in ruff
    assert bandit.startswith("bandit could not run: exit code 1")
    assert bandit.endswith("TypeError: 'int' object is not iterable")
    assert len(result.facts["tool_errors"]) == 2
    assert verdict(measured, "base").passed


def test_semgrep_is_planned_only_when_installed_visible_and_configured(tmp_path: Path) -> None:
    cfg = StaticGateConfig()
    tree = write(tmp_path / "tree", {"a.py": "x = 1\n", ".semgrep.yml": "rules: []\n"})
    assert (
        plan(tree, cfg, semgrep=None).not_run["semgrep"] == "semgrep is not installed on this host"
    )
    local = tmp_path / "bin" / "semgrep"
    local.parent.mkdir()
    local.write_text("#!/bin/sh\n")
    hidden = plan(tree, cfg, semgrep=str(local)).not_run["semgrep"]
    assert hidden.startswith(f"semgrep needs {local}")
    assert "under /usr" in hidden
    visible = plan(tree, cfg, semgrep=shutil.which("true") or "/usr/bin/true")
    assert visible.tools[-1] == "semgrep"
    assert "--config=.semgrep.yml" in visible.semgrep
    assert "semgrep" in plan(tree, cfg.model_copy(update={"semgrep": "off"}), semgrep=None).not_run
    assert "no local rules" in plan(tmp_path, cfg, semgrep=str(local)).not_run["semgrep"]


def test_semgrep_not_installed_is_said_in_the_details(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shipyard.gates.static.shutil.which", lambda _name: None)
    tree = write(tmp_path / "tree", {"a.py": "x = 1\n", ".semgrep.yml": "rules: []\n"})
    (tmp_path / "scratch").mkdir()
    result = StaticGate().measure(context(tree, tmp_path / "scratch", ruff=False, bandit=False))
    assert result.skipped
    assert result.facts["tools"]["semgrep"]["ran"] is False
    assert "semgrep not run: semgrep is not installed on this host" in result.details


def test_semgrep_results_become_findings() -> None:
    report = {
        "results": [
            {
                "check_id": "rules.no-eval",
                "path": "pkg/app.py",
                "start": {"line": 4, "col": 1},
                "extra": {"message": "eval of input", "lines": "eval(x)"},
            }
        ],
        "errors": [],
    }
    [finding] = parse_semgrep(report)
    assert finding == Finding(
        tool="semgrep", code="rules.no-eval", path="pkg/app.py", line=4, message="eval of input"
    )


def test_a_disabled_gate_is_skipped(tmp_path: Path) -> None:
    result = StaticGate().measure(context(tmp_path, tmp_path, enabled=False))
    assert result.skipped
    assert not StaticGate().applies(context(tmp_path, tmp_path, enabled=False))
    off = context(tmp_path, tmp_path, ruff=False, bandit=False, mypy="off", semgrep="off")
    assert not StaticGate().applies(off)
    assert StaticGate().measure(off).skipped


def test_without_a_trusted_baseline_only_findings_on_added_lines_count() -> None:
    def finding(line: int) -> Finding:
        return Finding(
            tool="mypy", code="misc", path="a.py", line=line, message="m", snippet=str(line)
        )

    view = ChangeView.of([ChangedFile(path="a.py", before="1\n2\n", after="1\n2\nx = 1  # noqa\n")])
    new, kept, fixed = introduced([], [finding(1), finding(3)], view, baselined=set())
    assert [f.line for f in new] == [3]
    assert (kept, fixed) == (1, 0)
    assert suppressions(view) == ["a.py:3: x = 1  # noqa"]


def test_mypy_sees_the_trees_installed_dependencies(tmp_path: Path) -> None:
    wheelhouse, scratch = tmp_path / "wheelhouse", tmp_path / "scratch"
    wheelhouse.mkdir()
    scratch.mkdir()
    for wheel in example_index().glob("packaging-*.whl"):
        shutil.copy(wheel, wheelhouse)
    code = "from packaging.version import Version\n\n\ndef v() -> int:\n    return Version('1')\n"
    tree = write(tmp_path / "tree", {"pyproject.toml": "[tool.mypy]\n", "a.py": code})
    env = python_env(scratch=scratch, wheelhouse=wheelhouse)
    done = install(
        BwrapSandbox(), tree=tree, env=env, python=sandbox_python(), files=[],
        extra=["packaging"], limits=gate_limits(timeout_seconds=120, memory_mb=4096),
    )  # fmt: skip
    assert done.ok, done.stderr
    bare = context(tree, scratch, ruff=False, bandit=False)
    installed = GateContext(**{**bare.__dict__, "env": env})
    [without] = StaticGate().measure(bare).facts["findings"]
    [typed] = StaticGate().measure(installed).facts["findings"]
    assert without["code"] == "import-not-found"
    assert (typed["code"], typed["line"]) == ("return-value", 5)


def test_a_tool_that_times_out_is_an_error(tmp_path: Path) -> None:
    slow = "import time\n\ntime.sleep(60)\n"  # a mypy plugin of the tree, imported by mypy
    tree = write(
        tmp_path / "tree",
        {"mypy.ini": "[mypy]\nplugins = slow_plugin.py\n", "slow_plugin.py": slow, "a.py": ""},
    )
    (tmp_path / "scratch").mkdir()
    ctx = context(tree, tmp_path / "scratch", ruff=False, bandit=False, timeout_seconds=2)
    result = StaticGate().measure(ctx)
    assert result.facts["errors"] == ["mypy could not run: timed out after 2 s"]
    assert result.facts["tools"]["mypy"]["error"] is True
    assert not result.passed
    verdict = StaticGate().compare(result, result, ChangeView())
    assert not verdict.passed
    assert verdict.summary.startswith("mypy could not run (see details)")
