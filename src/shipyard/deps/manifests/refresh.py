"""Write changed manifests into a workspace and refresh their lock files inside the sandbox.

Resolvers (pip-compile, uv, poetry, pdm) run in the sandbox with egress only to the package index's
``host:port`` through the host's egress proxy. Index credentials never enter the sandbox, so an index
URL that carries them is refused here. The tools come from shipyard's side, never from the
repository: pip-tools and uv from shipyard's environment, poetry and pdm from tool environments
(``LockTools``); all bound read-only.
"""

from __future__ import annotations

import logging
import posixpath
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from packaging.version import Version

from shipyard.deps.manifests.discovery import discover
from shipyard.deps.manifests.locks import LockFile
from shipyard.deps.manifests.model import LOCK_KINDS, Change, HashSource, Manifest, ManifestKind
from shipyard.deps.manifests.pins import pin_temporarily
from shipyard.deps.manifests.requirements import RequirementsFile
from shipyard.deps.manifests.tools import LockTools, base_python, uv_path
from shipyard.errors import DependencyError
from shipyard.sandbox.base import WORKSPACE, Limits, Mount
from shipyard.sandbox.egress import EgressSandbox, Grant, run_with_egress

log = logging.getLogger(__name__)

TOOLS_DIR = "/opt/shipyard/tools"
UV = "/opt/shipyard/bin/uv"
LOCK_TOOLS_DIR = "/opt/shipyard/lock-tools"
LIMITS = Limits(wall_seconds=300.0, cpu_seconds=600, memory_bytes=3 * 1024**3)
EventSink = Callable[[dict[str, object]], None]


@dataclass(frozen=True, kw_only=True)
class _Runner:
    """Runs one lock tool command in the sandbox with egress to the index only."""

    workspace: Path
    sandbox: EgressSandbox
    index_url: str
    tools: LockTools
    on_event: EventSink | None

    def run(self, argv: list[str], *, cwd: str, env: dict[str, str], what: str) -> None:
        mounts = [
            Mount(source=Path(sys.prefix), target=TOOLS_DIR),
            Mount(source=uv_path(), target=UV),
        ]
        for tool in ("poetry", "pdm"):
            if argv[0] == f"{LOCK_TOOLS_DIR}/{tool}/bin/python":
                mounts.append(
                    Mount(source=self.tools.environment(tool), target=f"{LOCK_TOOLS_DIR}/{tool}")
                )
        result = run_with_egress(
            self.sandbox, argv, workspace=self.workspace, grants=grants_for(self.index_url),
            on_event=self.on_event, env={**_BASE_ENV, **env}, mounts=mounts, limits=LIMITS,
            cwd=posixpath.join(WORKSPACE, cwd) if cwd else WORKSPACE,
        )  # fmt: skip
        if not result.ok:
            why = "it took too long" if result.timed_out else explain(result.stderr, result.stdout)
            raise DependencyError(
                f"{what} failed: {why}. Check that the versions asked for exist on the index "
                "and that the project's constraints admit them."
            )


_TELLING = re.compile(
    r"^\s*(?:ERROR|error|Could not find|No matching|Because|\u00d7|\u2570\u2500\u25b6|The conflict is caused by"
    r"|cause:|And because|Unable to find|Package .* not found|.*SolverProblemError|\[\w+Error\])"
)
_NOISE = re.compile(r"^\s*(?:Traceback|File \"|\^+$|raise |During handling)")


def explain(stderr: str, stdout: str = "") -> str:
    """The lines of a resolver's output that say what went wrong (not its traceback)."""
    lines = [line.strip() for line in f"{stderr}\n{stdout}".splitlines() if line.strip()]
    telling = [line for line in lines if _TELLING.match(line)]
    if not telling:
        telling = [line for line in lines if not _NOISE.match(line)][-3:]
    text = " | ".join(dict.fromkeys(telling[:6])).rstrip(".")
    return text or "the tool failed without a message"


_BASE_ENV = {
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PATH": f"{TOOLS_DIR}/bin:/usr/local/bin:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "UV_CACHE_DIR": "/tmp/uv-cache",
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_NO_PROGRESS": "1",
}


def grants_for(index_url: str) -> list[Grant]:
    """The egress a resolver needs: the index's host and port (PyPI's file host besides)."""
    parts = urlsplit(index_url)
    if parts.username or parts.password:
        raise DependencyError(
            "lock files cannot be refreshed against an index URL with credentials: credentials "
            "stay on the host and never enter the sandbox. Use an index that needs none for "
            "lock refreshes, or a host-side mirror of it."
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DependencyError(f"index URL {index_url!r} must be http:// or https:// with a host.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    grants = [Grant(parts.hostname, port)]
    if parts.hostname == "pypi.org":
        grants.append(Grant("files.pythonhosted.org", 443))
    return grants


def apply_changes(
    workspace: Path,
    changes: Sequence[Change],
    *,
    sandbox: EgressSandbox,
    index_url: str,
    hashes: HashSource,
    tools: LockTools,
    on_event: EventSink | None = None,
) -> list[str]:
    """Make ``changes`` in the workspace: edit manifests, then refresh every lock they affect.

    A change to a lock file (a transitive pin) or to a compiled requirements file refreshes that file
    with its tool, moving exactly that package; a change to a manifest refreshes the locks compiled
    from it. Returns the repo-relative paths of the files that changed. Raises DependencyError
    naming the file and the tool's explanation when an edit or a resolution fails; the workspace may
    then hold partial edits, which the caller discards.
    """
    grants_for(index_url)  # refuse an unusable index before touching anything
    manifests = {m.path: m for m in discover(workspace)}
    unknown = sorted({c.manifest for c in changes} - set(manifests))
    if unknown:
        raise DependencyError(
            f"no manifest {', '.join(unknown)} in the workspace; plan the update again."
        )
    before = {path: (workspace / path).read_bytes() for path in manifests}
    edited: set[str] = set()
    for path, manifest in manifests.items():
        mine = [c for c in changes if c.manifest == path]
        if not mine:
            continue
        text = manifest.apply(mine, hashes=hashes)
        if manifest.kind not in LOCK_KINDS and text != manifest.text:
            (workspace / path).write_bytes(text.encode("utf-8"))
        edited.add(path)
    runner = _Runner(
        workspace=workspace, sandbox=sandbox, index_url=index_url, tools=tools, on_event=on_event
    )
    for path, manifest in manifests.items():
        if manifest.compiled_from is None and manifest.kind not in LOCK_KINDS:
            continue
        source_changed = manifest.compiled_from in edited
        if path not in edited and not source_changed:
            continue
        upgrades = {
            c.canonical_name: c.new_version
            for c in changes
            if c.manifest in (path, manifest.compiled_from)
        }
        _refresh(runner, workspace, manifest, upgrades, everything=False)
    return [p for p, data in before.items() if (workspace / p).read_bytes() != data]


def refresh_locks(
    workspace: Path,
    *,
    sandbox: EgressSandbox,
    index_url: str,
    tools: LockTools,
    files: Sequence[str] | None = None,
    on_event: EventSink | None = None,
) -> list[str]:
    """Lock file maintenance: re-resolve every lock file (or ``files``) to the newest versions its
    manifests admit, transitive pins included. Returns the repo-relative paths that changed."""
    grants_for(index_url)
    manifests = [
        m for m in discover(workspace)
        if (m.kind in LOCK_KINDS or m.compiled_from is not None)
        and (files is None or m.path in files)
    ]  # fmt: skip
    runner = _Runner(
        workspace=workspace, sandbox=sandbox, index_url=index_url, tools=tools, on_event=on_event
    )
    before = {m.path: (workspace / m.path).read_bytes() for m in manifests}
    for manifest in manifests:
        _refresh(runner, workspace, manifest, {}, everything=True)
    return [p for p, data in before.items() if (workspace / p).read_bytes() != data]


def _refresh(
    runner: _Runner,
    workspace: Path,
    manifest: Manifest,
    upgrades: dict[str, Version],
    *,
    everything: bool,
) -> None:
    if isinstance(manifest, RequirementsFile):
        _compile(runner, workspace, manifest, upgrades, everything)
    elif isinstance(manifest, LockFile):
        folder = posixpath.dirname(manifest.path)
        extra = _new_entries(workspace / folder)
        try:
            if manifest.kind is ManifestKind.UV_LOCK:
                _uv_lock(runner, folder, upgrades, everything)
            elif manifest.kind is ManifestKind.POETRY_LOCK:
                _poetry_lock(runner, workspace, manifest, upgrades, everything)
            else:
                _pdm_lock(runner, workspace, manifest, upgrades, everything)
        finally:
            extra()


def _compile(
    runner: _Runner,
    workspace: Path,
    manifest: RequirementsFile,
    upgrades: dict[str, Version],
    everything: bool,
) -> None:
    header = manifest.header
    cwd = manifest.compile_dir
    output = posixpath.relpath(manifest.path, cwd or ".")
    if header is not None:
        options, sources = header.replay(), list(header.sources)
        tool = header.tool
    else:
        assert manifest.compiled_from is not None
        options, sources = [], [posixpath.relpath(manifest.compiled_from, cwd or ".")]
        tool = "pip-compile"
    moves = ["--upgrade"] if everything else []
    for name, version in sorted(upgrades.items()):
        moves += ["--upgrade-package", f"{name}=={version}"]
    python = str(base_python())
    if tool == "uv":
        argv = [UV, "pip", "compile", *options, *sources, "--output-file", output, *moves]
        env = {"UV_INDEX_URL": runner.index_url, "UV_PYTHON": python}
    else:
        argv = [f"{TOOLS_DIR}/bin/python", "-I", "-m", "piptools", "compile", *options, *sources]
        argv += ["--output-file", output, "--cache-dir", "/tmp/pip-tools", *moves]
        env = {"PIP_INDEX_URL": runner.index_url}
    original = manifest.text
    runner.run(argv, cwd=cwd, env=env, what=f"{tool} for {manifest.path}")
    path = workspace / manifest.path
    path.write_bytes(_restore(original, path.read_bytes().decode("utf-8")).encode("utf-8"))


def _restore(original: str, new: str) -> str:
    """``new`` with ``original``'s header, its index options only, and its line endings."""
    old_lines = original.splitlines()
    new_lines = new.splitlines()
    old_head = _head(old_lines)
    body = new_lines[len(_head(new_lines)) :]
    keep = {line.strip() for line in old_lines}
    index_options = ("--index-url", "--extra-index-url", "--trusted-host", "--find-links", "-i ")
    body = [
        line for line in body
        if not line.startswith(index_options) or line.strip() in keep
    ]  # fmt: skip
    eol = "\r\n" if "\r\n" in original else "\n"
    text = eol.join([*old_head, *body])
    return text + eol if new.endswith("\n") or original.endswith("\n") else text


def _head(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if not line.startswith("#"):
            break
        out.append(line)
    return out


def _uv_lock(runner: _Runner, folder: str, upgrades: dict[str, Version], everything: bool) -> None:
    moves = ["--upgrade"] if everything else []
    for name, version in sorted(upgrades.items()):
        moves += ["--upgrade-package", f"{name}=={version}"]
    env = {"UV_DEFAULT_INDEX": runner.index_url.rstrip("/"), "UV_PYTHON": str(base_python())}
    runner.run([UV, "lock", *moves], cwd=folder, env=env, what=f"uv lock in {folder or '.'}")


def _poetry_lock(
    runner: _Runner,
    workspace: Path,
    lock: LockFile,
    upgrades: dict[str, Version],
    everything: bool,
) -> None:
    folder = posixpath.dirname(lock.path)
    argv = [f"{LOCK_TOOLS_DIR}/poetry/bin/python", "-I", "-m", "poetry", "lock", "--no-interaction"]
    env = {
        "POETRY_CACHE_DIR": "/tmp/poetry-cache",
        "POETRY_VIRTUALENVS_CREATE": "false",
        "POETRY_KEYRING_ENABLED": "false",
        "POETRY_NO_INTERACTION": "1",
    }
    what = f"poetry lock in {folder or '.'}"
    if everything:
        runner.run([*argv, "--regenerate"], cwd=folder, env=env, what=what)
        return
    _lock_pinned(runner, workspace, folder, upgrades, "poetry", argv, env=env, what=what)


def _pdm_lock(
    runner: _Runner,
    workspace: Path,
    lock: LockFile,
    upgrades: dict[str, Version],
    everything: bool,
) -> None:
    folder = posixpath.dirname(lock.path)
    argv = [f"{LOCK_TOOLS_DIR}/pdm/bin/python", "-I", "-m", "pdm", "lock", "-G", ":all"]
    env = {
        "PDM_PYPI_URL": runner.index_url,
        "PDM_CACHE_DIR": "/tmp/pdm-cache",
        "PDM_HOME": "/tmp/pdm-home",
        "PDM_CHECK_UPDATE": "false",
        "PDM_USE_VENV": "false",
        "PDM_IGNORE_SAVED_PYTHON": "1",
        "PDM_PYTHON": str(base_python()),
        "PDM_NON_INTERACTIVE": "1",
    }
    what = f"pdm lock in {folder or '.'}"
    if everything:
        runner.run(argv, cwd=folder, env=env, what=what)
        return
    argv = [*argv, "--update-reuse"]
    _lock_pinned(runner, workspace, folder, upgrades, "pep621", argv, env=env, what=what)


def _lock_pinned(
    runner: _Runner,
    workspace: Path,
    folder: str,
    upgrades: dict[str, Version],
    style: str,
    argv: list[str],
    *,
    env: dict[str, str],
    what: str,
) -> None:
    """Lock with each upgrade pinned in a temporary copy of the dependencies, then again with the
    real pyproject.toml, which keeps the versions now locked and leaves the lock's content hash
    matching the real file. For tools that cannot lock one package at a chosen version."""
    with pin_temporarily(workspace / folder / "pyproject.toml", upgrades, style=style):
        runner.run(argv, cwd=folder, env=env, what=what)
    runner.run(argv, cwd=folder, env=env, what=what)


def _new_entries(folder: Path) -> Callable[[], None]:
    """A callback that removes what a tool left beside the lock (``.pdm-python``, ``.venv``)."""
    existing = {p.name for p in folder.iterdir()} if folder.is_dir() else set()

    def clean() -> None:
        for entry in folder.iterdir():
            if entry.name not in existing:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    return clean
