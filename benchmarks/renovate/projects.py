"""The repositories of the comparison: the bundled example, and released open-source projects
rebuilt from their published sdists (pinned by version and sha256, so every run sees the same files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

PYPI_JSON = "https://pypi.org/pypi/{name}/json"
PYPI_SIMPLE = "https://pypi.org/simple/"


@dataclass(frozen=True)
class Sdist:
    """A published source release; ``why`` says what in it gives both tools something to find."""

    name: str
    version: str
    filename: str
    sha256: str
    why: str
    edits: tuple[tuple[str, str, str], ...] = ()
    """(file, old text, new text) applied before the commit, for a labelled variant."""
    label: str = ""

    @property
    def key(self) -> str:
        return self.label or f"{self.name}-{self.version}"


PROJECTS = (
    Sdist(
        "flask",
        "2.3.2",
        "Flask-2.3.2.tar.gz",
        "8c2f9abd47a9e8df7f0c3f091ce9497d011dc3b31effcf4c85a6e2b50f4114ef",
        "pip-compile-multi output pinned with == in requirements/*.txt (with -r includes and "
        "'# via' comments), PEP 621 lower bounds in pyproject.toml, three example apps",
    ),
    Sdist(
        "celery",
        "5.2.7",
        "celery-5.2.7.tar.gz",
        "fafbd82934d30f8a004f81e8f7a062e31413a23d444be8ee3326553915958c6d",
        "about forty requirements files: ranges with upper bounds (<4.0), ~= pins, "
        "exclusions (!=4.0.0), markers, -r includes, git URLs, and a Django example",
    ),
    Sdist(
        "prefect",
        "2.10.0",
        "prefect-2.10.0.tar.gz",
        "d1c9ce28e2bab386daf452cfca34b16ede4e4da9c49ea72474b2eb21f25b11b7",
        "requirements.txt and requirements-dev.txt at the root: lower bounds, upper bounds "
        "(click <8.2, sqlalchemy <2.0, jsonschema <5.0.0), exclusions, extras and markers",
    ),
    Sdist(
        "celery",
        "5.2.7",
        "celery-5.2.7.tar.gz",
        "fafbd82934d30f8a004f81e8f7a062e31413a23d444be8ee3326553915958c6d",
        "the same with requirements/dev.txt's first line, 'pytz>dev' (not PEP 508: 'dev' is no "
        "version), removed: both tools skip that line; this checks they find the same without it",
        edits=(("requirements/dev.txt", "pytz>dev\n", ""),),
        label="celery-5.2.7-without-pytz-dev",
    ),
)

GIT_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Benchmark",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Benchmark",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(sdist: Sdist, cache: Path) -> Path:
    """The sdist file, downloaded from PyPI once into ``cache`` and checked against its sha256."""
    path = cache / sdist.filename
    if path.is_file() and _sha256(path) == sdist.sha256:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    api = PYPI_JSON.format(name=sdist.name)
    with urllib.request.urlopen(api, timeout=60) as response:
        data = json.load(response)
    files = data["releases"].get(sdist.version) or []
    url = next((f["url"] for f in files if f["filename"] == sdist.filename), None)
    if url is None:
        raise RuntimeError(f"{api}: release {sdist.version} has no file {sdist.filename}")
    with urllib.request.urlopen(urljoin(api, url), timeout=300) as response:
        path.write_bytes(response.read())
    if _sha256(path) != sdist.sha256:
        path.unlink()
        raise RuntimeError(f"{sdist.filename}: sha256 differs from the pinned {sdist.sha256}")
    return path


def git_repo(dest: Path, source: Path | None = None) -> Path:
    """Make ``dest`` (holding the files) a git repository with one commit on main."""
    if source is not None:
        shutil.copytree(source, dest)
    for args in (
        ["init", "--quiet", "--initial-branch=main"],
        ["add", "--all", "--force"],
        ["commit", "--quiet", "--no-verify", "-m", "Published release"],
    ):
        subprocess.run(
            ["git", *args], cwd=dest, env=GIT_ENV, check=True, capture_output=True, timeout=120
        )
    return dest


def with_shipyard_config(repo: Path, dest: Path, deps: dict[str, object]) -> Path:
    """A copy of ``repo`` whose shipyard.toml (made or extended) sets ``deps`` in ``[deps]``."""
    import tomlkit

    shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(".git"))
    path = dest / "shipyard.toml"
    doc = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    table = doc.setdefault("deps", tomlkit.table())
    for key, value in deps.items():
        table[key] = value
    path.write_text(tomlkit.dumps(doc))
    return git_repo(dest)


def sdist_repo(sdist: Sdist, cache: Path, dest: Path) -> Path:
    """The sdist's files, its top folder stripped, as a git repository at ``dest``."""
    archive = fetch(sdist, cache)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            parts = Path(member.name).parts[1:]
            if not parts or not (member.isfile() or member.isdir()):
                continue
            member.name = str(Path(*parts))
            members.append(member)
        tar.extractall(dest, members=members, filter="data")
    for name, old, new in sdist.edits:
        path = dest / name
        text = path.read_text()
        if old not in text:
            raise RuntimeError(f"{sdist.filename}: {name} has no {old!r} to edit")
        path.write_text(text.replace(old, new, 1))
    return git_repo(dest)
