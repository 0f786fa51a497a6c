"""The static-analysis gate: ruff, mypy, bandit and semgrep on a tree; only new findings count.

Every tool runs inside the sandbox from shipyard's own pinned environment (never the tree's),
with the repository's own configuration, and writes machine-readable output that the host parses.
A finding is matched across commits by a fingerprint without line numbers (tool, rule, path
followed through renames, the text of the offending line, the message), counted as a multiset:
code pushed down by an insertion above it and a renamed file keep their old findings, while a
second copy of an old problem is new. A tool that cannot run (broken configuration, timeout) is
an error, never a pass.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from shipyard.config import StaticGateConfig
from shipyard.gates.base import TOOLS_PYTHON, ChangeView, GateContext
from shipyard.gates.environment import ENV_DIR, gate_limits
from shipyard.gates.reports import read_report
from shipyard.model import Finding, GateResult
from shipyard.sandbox.base import WORKSPACE, CommandResult, Limits, Mount
from shipyard.sandbox.bwrap import SYSTEM_DIRS

MYPY_CACHE = "/tmp/mypy-cache"
BANDIT_EXCLUDES = (
    *("/.git/", "/__pycache__/", "/.tox/", "/.nox/", "/.eggs/", "/.venv/", "/venv/"),
    *("/tests/", "/test/", "/build/", "/node_modules/"),
)
"""Left out of bandit's scan unless the repository configures bandit itself ([tool.bandit])."""
MAX_DETAILS = 200
_SUPPRESSION = re.compile(r"#\s*(?:noqa\b|nosec\b|type:\s*ignore\b)", re.IGNORECASE)
_LINE_REF = re.compile(r"\bline \d+")


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Which tools run on a tree, why the others do not, and the semgrep command when it runs."""

    tools: tuple[str, ...]
    not_run: dict[str, str]
    semgrep: tuple[str, ...] = ()


@dataclass
class ToolRun:
    """What one tool reported on one tree: findings, or the error that kept it from finishing."""

    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def mypy_config(tree: Path) -> dict[str, Any] | None:
    """The mypy settings the tree configures (in mypy's order of files), or None if it has none."""
    for name in ("mypy.ini", ".mypy.ini", "pyproject.toml", "setup.cfg"):
        if not (tree / name).is_file():
            continue
        text = (tree / name).read_text(encoding="utf-8", errors="replace")
        if name == "pyproject.toml":
            section = _toml_tool(text, "mypy")
            if section is not None:
                return section
            continue
        parser = configparser.ConfigParser(interpolation=None)
        with contextlib.suppress(configparser.Error):
            parser.read_string(text)
        if parser.has_section("mypy"):
            return dict(parser["mypy"])
        if name != "setup.cfg":
            return {}  # mypy uses the file anyway, and reports what is wrong with it
    return None


def _toml_tool(text: str, tool: str) -> dict[str, Any] | None:
    """The ``[tool.<tool>]`` table of a pyproject.toml's text, or None."""
    try:
        section = tomllib.loads(text).get("tool", {}).get(tool)
    except tomllib.TOMLDecodeError:
        return None
    return section if isinstance(section, dict) else None


def _semgrep_hidden(binary: str) -> str | None:
    """Why the sandbox could not start semgrep at ``binary`` (outside the system dirs), or None."""
    paths = [Path(binary).resolve()]
    with paths[0].open("rb") as fh:
        head = fh.read(256)
    if head.startswith(b"#!"):
        interpreter = head[2:].split(b"\n", 1)[0].split()
        if interpreter:
            paths.append(Path(interpreter[0].decode(errors="replace")).resolve())
    for path in paths:
        if not any(path.is_relative_to(d) for d in SYSTEM_DIRS):
            return f"semgrep needs {path}, which the sandbox does not show; install it under /usr"
    return None


def plan(tree: Path, cfg: StaticGateConfig, *, semgrep: str | None) -> Plan:
    """The tools to run on ``tree``; ``semgrep`` is the host's semgrep executable, if any."""
    not_run: dict[str, str] = {}
    if not cfg.ruff:
        not_run["ruff"] = "turned off in the configuration"
    if cfg.mypy == "off":
        not_run["mypy"] = "turned off in the configuration"
    elif cfg.mypy == "auto" and mypy_config(tree) is None:
        not_run["mypy"] = "the repository does not configure mypy"
    if not cfg.bandit:
        not_run["bandit"] = "turned off in the configuration"
    root = tree.resolve()
    rules = [
        r
        for r in cfg.semgrep_rules
        if (tree / r).exists() and (tree / r).resolve().is_relative_to(root)
    ]
    command: tuple[str, ...] = ()
    if cfg.semgrep == "off":
        not_run["semgrep"] = "turned off in the configuration"
    elif not rules:
        not_run["semgrep"] = "no local rules (" + ", ".join(cfg.semgrep_rules) + ")"
    elif semgrep is None:
        not_run["semgrep"] = "semgrep is not installed on this host"
    elif hidden := _semgrep_hidden(semgrep):
        not_run["semgrep"] = hidden
    else:
        command = (str(Path(semgrep).resolve()), "scan", *(f"--config={r}" for r in rules))
    tools = tuple(t for t in ("ruff", "mypy", "bandit", "semgrep") if t not in not_run)
    return Plan(tools=tools, not_run=not_run, semgrep=command)


@dataclass(frozen=True, kw_only=True)
class _Sandboxed:
    """Runs a tool in the sandbox with a writable report directory at ``ENV_DIR``."""

    ctx: GateContext
    limits: Limits
    reports: Path
    mounts: tuple[Mount, ...]

    @classmethod
    def of(cls, ctx: GateContext) -> _Sandboxed:
        limits = gate_limits(
            timeout_seconds=ctx.config.static.timeout_seconds, memory_mb=ctx.config.tests.memory_mb
        )
        for mount in ctx.env.mounts if ctx.env else ():
            if mount.target == ENV_DIR:
                return cls(ctx=ctx, limits=limits, reports=mount.source, mounts=())
        own = (Mount(source=ctx.scratch, target=ENV_DIR, writable=True),)
        return cls(ctx=ctx, limits=limits, reports=ctx.scratch, mounts=own)

    def run(
        self, argv: Sequence[str], report: str | None = None, env: dict[str, str] | None = None
    ) -> tuple[CommandResult, bytes | None]:
        if report:
            with contextlib.suppress(OSError):  # not a plain file: read_report refuses it below
                (self.reports / report).unlink(missing_ok=True)
        result = self.ctx.run(argv, limits=self.limits, env=env, mounts=self.mounts, tools=True)
        data = read_report(self.reports / report) if report else result.stdout.encode()
        return result, data

    def failure(self, result: CommandResult, ok_codes: Sequence[int] = (0,)) -> str | None:
        """Why a tool's run cannot be trusted, or None."""
        if result.timed_out:
            return f"timed out after {self.limits.wall_seconds:.0f} s"
        if result.output_truncated:
            return "its output exceeded the sandbox's limit"
        if result.exit_code not in ok_codes or result.violations:
            said = [
                ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()
            ]
            if said and not said[0].startswith("Traceback"):
                said = said[:3] + said[3:][-1:]  # the tool's own words, then its last line
            text = " | ".join([*result.violations, *said[-4:]])
            return f"exit code {result.exit_code}: {text[:500]}"
        return None


def _relative(path: str) -> str:
    """A path a tool reported, relative to the tree's root when it lies inside the tree."""
    path = os.path.normpath(path)
    return path.removeprefix(f"{WORKSPACE}/") if path != WORKSPACE else "."


def _parsed(tool: str, data: bytes | None, parse: Callable[[Any], list[Finding]]) -> ToolRun:
    if data is None:
        return ToolRun(error="it wrote no report")
    try:
        return ToolRun(findings=parse(json.loads(data)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return ToolRun(error=f"its {tool} report is unreadable ({exc})")


def _ruff(sb: _Sandboxed, cfg: StaticGateConfig, _plan: Plan) -> ToolRun:
    argv = [TOOLS_PYTHON, "-m", "ruff", "check", "--output-format=json", "--no-cache"]
    argv += ["--exit-zero", f"--output-file={ENV_DIR}/static-ruff.json", *cfg.paths]
    result, data = sb.run(argv, "static-ruff.json")
    if error := sb.failure(result):
        return ToolRun(error=error)
    return _parsed("ruff", data, lambda items: [
        Finding(tool="ruff", code=str(i["code"] or i.get("name") or "syntax"),
                path=_relative(i["filename"]), line=int(i["location"]["row"]), message=i["message"])
        for i in items
    ])  # fmt: skip


def _mypy(sb: _Sandboxed, cfg: StaticGateConfig, _plan: Plan) -> ToolRun:
    argv = [TOOLS_PYTHON, "-m", "mypy", "-O", "json", f"--cache-dir={MYPY_CACHE}"]
    argv += ["--no-error-summary", "--show-error-codes"]
    env = sb.ctx.env
    argv += ["--python-executable", env.python] if env else ["--no-site-packages"]
    settings = mypy_config(sb.ctx.tree) or {}
    if not any(key in settings for key in ("files", "modules", "packages")):
        argv += cfg.paths
    result, data = sb.run(argv)
    if error := sb.failure(result, ok_codes=(0, 1)):
        return ToolRun(error=error)
    run = ToolRun()
    for line in (data or b"").decode(errors="replace").splitlines():
        if not line.strip():
            continue
        parsed = _parsed("mypy", line.encode(), lambda i: [
            Finding(tool="mypy", code=str(i.get("code") or "error"), path=_relative(i["file"]),
                    line=int(i["line"]) if i["line"] and i["line"] > 0 else None,
                    message=str(i["message"]))
        ] if i["severity"] == "error" else [])  # fmt: skip
        if parsed.error:
            return parsed
        run.findings += parsed.findings
    if result.exit_code == 1 and not run.findings:
        return ToolRun(error="exit code 1 without any error reported")
    return run


def _bandit(sb: _Sandboxed, cfg: StaticGateConfig, _plan: Plan) -> ToolRun:
    argv = [TOOLS_PYTHON, "-m", "bandit", "-r", "-f", "json", "-q"]
    argv += [f"--severity-level={cfg.bandit_severity}", "-o", f"{ENV_DIR}/static-bandit.json"]
    pyproject = sb.ctx.tree / "pyproject.toml"
    text = pyproject.read_text(errors="replace") if pyproject.is_file() else ""
    if _toml_tool(text, "bandit") is not None:
        argv += ["-c", "pyproject.toml"]
    else:
        argv += ["-x", ",".join(BANDIT_EXCLUDES)]
    result, data = sb.run([*argv, *cfg.paths], "static-bandit.json")
    if data is None:  # bandit exits 1 both for findings and for crashes: only the report tells
        return ToolRun(error=sb.failure(result) or "it wrote no report")
    unread: list[str] = []

    def parse(report: dict[str, Any]) -> list[Finding]:
        unread.extend(f"bandit could not read {_relative(e['filename'])}" for e in report["errors"])
        return [
            Finding(tool="bandit", code=str(i["test_id"]), path=_relative(i["filename"]),
                    line=int(i["line_number"]), message=str(i["issue_text"]))
            for i in report["results"]
        ]  # fmt: skip

    run = _parsed("bandit", data, parse)
    run.error = run.error and (sb.failure(result, ok_codes=()) or run.error)
    run.notes += unread
    return run


def _semgrep(sb: _Sandboxed, cfg: StaticGateConfig, plan_: Plan) -> ToolRun:
    argv = [*plan_.semgrep, "--json", "--metrics=off", "--disable-version-check", "--quiet"]
    argv += [f"--output={ENV_DIR}/static-semgrep.json", *cfg.paths]
    env = {"SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    result, data = sb.run(argv, "static-semgrep.json", env=env)
    if error := sb.failure(result, ok_codes=(0, 1)):
        return ToolRun(error=error)
    return _parsed("semgrep", data, parse_semgrep)


def parse_semgrep(report: dict[str, Any]) -> list[Finding]:
    """Findings from semgrep's JSON report (``--json``)."""
    return [
        Finding(tool="semgrep", code=str(i["check_id"]), path=_relative(i["path"]),
                line=int(i["start"]["line"]), message=str(i["extra"]["message"]))
        for i in report["results"]
    ]  # fmt: skip


RUNNERS: dict[str, Callable[[_Sandboxed, StaticGateConfig, Plan], ToolRun]] = {
    "ruff": _ruff,
    "mypy": _mypy,
    "bandit": _bandit,
    "semgrep": _semgrep,
}


def with_snippets(tree: Path, findings: Sequence[Finding]) -> list[Finding]:
    """The findings, each with ``snippet`` set to its stripped line from a file in the tree."""
    root, lines, out = tree.resolve(), dict[str, list[str]](), []
    for f in findings:
        if f.path not in lines:
            path = (tree / f.path).resolve()
            inside = path.is_relative_to(root) and path.is_file()
            data = read_report(path) if inside else None
            lines[f.path] = (data or b"").decode("utf-8", errors="replace").splitlines()
        text = lines[f.path]
        snippet = text[f.line - 1].strip() if f.line and 0 < f.line <= len(text) else ""
        out.append(replace(f, snippet=snippet[:300]))
    return out


def fingerprint(f: Finding, renames: dict[str, str]) -> tuple[str, str, str, str, str]:
    """What identifies a finding across commits: no line number, and the path before any rename."""
    message = _LINE_REF.sub("line N", " ".join(f.message.split()))
    return (f.tool, f.code, renames.get(f.path, f.path), " ".join(f.snippet.split()), message)


def introduced(
    baseline: Sequence[Finding],
    change: Sequence[Finding],
    view: ChangeView,
    baselined: set[str],
) -> tuple[list[Finding], int, int]:
    """The change's new findings, how many it kept from the baseline and how many it fixed.

    Findings of tools in ``baselined`` are matched by fingerprint as multisets (those on lines
    the change added are matched last, so a duplicate is blamed where it was written); other tools
    had no trustworthy baseline, so only their findings on lines the change added count.
    """
    added = view.added_lines()
    pool = Counter(fingerprint(f, {}) for f in baseline if f.tool in baselined)
    new: list[Finding] = []
    kept = 0
    for f in sorted(change, key=lambda f: (f.line or 0) in added.get(f.path, ())):
        key = fingerprint(f, view.renames)
        if f.tool in baselined and pool[key] > 0:
            pool[key] -= 1
            kept += 1
        elif f.tool in baselined or (f.line or 0) in added.get(f.path, ()):
            new.append(f)
        else:
            kept += 1
    new.sort(key=lambda f: (f.path, f.line or 0, f.tool, f.code))
    return new, kept, sum(pool.values())


def suppressions(view: ChangeView) -> list[str]:
    """Lines the change added that silence a tool (``# noqa``, ``# nosec``, ``# type: ignore``)."""
    found: list[str] = []
    for path, numbers in sorted(view.added_lines().items()):
        if not path.endswith((".py", ".pyi")):
            continue
        after = next(f.after for f in view.files if f.path == path) or ""
        text = after.splitlines()
        found += [f"{path}:{n}: {text[n - 1].strip()}" for n in sorted(numbers)
                  if n <= len(text) and _SUPPRESSION.search(text[n - 1])]  # fmt: skip
    return found


def findings_of(result: GateResult) -> list[Finding]:
    return [Finding(**f) for f in result.facts.get("findings", [])]


class StaticGate:
    """Static and security analysis of a tree; the change answers only for what it introduced."""

    name = "static"

    def applies(self, ctx: GateContext) -> bool:
        cfg = ctx.config.static
        return cfg.enabled and bool(plan(ctx.tree, cfg, semgrep=shutil.which("semgrep")).tools)

    def measure(self, ctx: GateContext) -> GateResult:
        started, cfg = time.monotonic(), ctx.config.static
        if not cfg.enabled:
            return GateResult(gate=self.name, passed=True, summary="turned off", skipped=True)
        chosen = plan(ctx.tree, cfg, semgrep=shutil.which("semgrep"))
        tools: dict[str, dict[str, Any]] = {
            t: {"ran": False, "reason": why} for t, why in chosen.not_run.items()
        }
        notes = [f"{t} not run: {why}" for t, why in chosen.not_run.items()]
        if not chosen.tools:
            summary = "no analysis tool applies"
            facts: dict[str, Any] = {"findings": [], "tools": tools, "errors": [], "notes": notes}
            return GateResult(gate=self.name, passed=True, summary=summary, facts=facts,
                              details=tuple(notes), skipped=True)  # fmt: skip
        sandboxed, findings, errors = _Sandboxed.of(ctx), list[Finding](), list[str]()
        for tool in chosen.tools:
            begun = time.monotonic()
            run = RUNNERS[tool](sandboxed, cfg, chosen)
            seconds = round(time.monotonic() - begun, 3)
            tools[tool] = {"ran": True, "count": len(run.findings), "seconds": seconds}
            tools[tool]["error"] = run.error is not None
            findings += run.findings
            notes += run.notes
            if run.error:
                errors.append(f"{tool} could not run: {run.error}")
        findings = with_snippets(ctx.tree, findings)
        counts = Counter(f.tool for f in findings)
        found = ", ".join(f"{t} {n}" for t, n in counts.items())
        summary = "; ".join([f"findings: {found}" if found else "no findings", *errors])
        facts = {"findings": [asdict(f) for f in findings], "tools": tools, "errors": errors}
        details = [*errors, *(f.render() for f in findings), *notes][:MAX_DETAILS]
        return GateResult(
            gate=self.name, passed=not findings and not errors, summary=summary,
            facts={**facts, "notes": notes}, details=tuple(details),
            duration_seconds=round(time.monotonic() - started, 3),
        )  # fmt: skip

    def compare(self, baseline: GateResult, change: GateResult, view: ChangeView) -> GateResult:
        if change.skipped:
            return GateResult(gate=self.name, passed=True, summary=change.summary, skipped=True,
                              facts={"introduced": 0, "existing": 0, "fixed": 0, "findings": [],
                                     "tool_errors": []})  # fmt: skip
        before, after = baseline.facts.get("tools", {}), change.facts.get("tools", {})
        both = {t for t, info in before.items() if info.get("ran") and not info.get("error")}
        both &= {t for t, info in after.items() if info.get("ran")}
        new, kept, fixed = introduced(findings_of(baseline), findings_of(change), view, both)
        errors = list(change.facts.get("errors", []))
        silenced = suppressions(view)
        details = [*errors]
        for f in new[:MAX_DETAILS]:
            details += [f.render(), f"    {f.snippet}"] if f.snippet else [f.render()]
        details.append(f"{kept} existing finding(s) were there before the change and not counted")
        details += [f"baseline: {e}" for e in baseline.facts.get("errors", [])]
        details += [f"new suppression comment: {s}" for s in silenced]
        codes = ", ".join(sorted({f"{f.tool} {f.code}" for f in new}))
        words = f"{len(new)} new finding{'s' * (len(new) != 1)}" + (f" ({codes})" if new else "")
        broken = sorted({e.split(" ", 1)[0] for e in errors})
        failed = [f"{' and '.join(broken)} could not run (see details)"] if broken else []
        summary = "; ".join([*failed, words, f"{kept} existing not counted"])
        return GateResult(
            gate=self.name,
            passed=not new and not errors,
            summary=summary,
            facts={
                "introduced": len(new), "existing": kept, "fixed": fixed,
                "findings": [asdict(f) for f in new], "tool_errors": errors,
                "baseline_errors": list(baseline.facts.get("errors", [])),
                "suppressions": silenced,
            },
            details=tuple(details),
            duration_seconds=change.duration_seconds,
        )  # fmt: skip
