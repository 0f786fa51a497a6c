"""A small deterministic package index with extras and transitive dependencies, served over HTTP.

The example index has no dependencies between its packages; lock files need some. Wheels here are
byte-for-byte the same on every build (fixed zip times and file times), so lock fixtures generated
against this index (by ``fixtures/generate.py``) keep their hashes.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.deps.localindex import serve
from tests.deps.conftest import WHEEL_FILE, with_record

FIXTURES = Path(__file__).parent / "fixtures"
INDEX_BASE = "http://127.0.0.1:65000"
"""Where the fixtures' lock files say the index is; tests substitute the served index's address."""
NEWER = frozenset(
    {("webkit", "1.1.0"), ("webkit", "2.0.0"), ("helper", "1.2.0"), ("speedups", "1.1.0"),
     ("colorize", "2.1.0"), ("tinyfmt", "1.0.1")}
)  # fmt: skip
"""Releases published after the fixtures were locked: each fixture has updates waiting."""

RELEASES: dict[str, dict[str, tuple[str, ...]]] = {
    "webkit": {
        "1.0.0": ("helper>=1.0", "speedups>=1.0; extra == 'fast'"),
        "1.1.0": ("helper>=1.0", "speedups>=1.0; extra == 'fast'"),
        "2.0.0": ("helper>=1.1", "speedups>=1.1; extra == 'fast'"),
    },
    "helper": {"1.0.0": (), "1.1.0": (), "1.2.0": ()},
    "speedups": {"1.0.0": (), "1.1.0": ()},
    "tinyfmt": {"0.9.0": (), "1.0.0": (), "1.0.1": ()},
    "colorize": {"2.0.0": (), "2.1.0": ()},
}
_TIME = (2024, 1, 1, 0, 0, 0)
_MTIME = 1_704_067_200  # 2024-01-01T00:00:00Z, the PEP 700 upload time the index reports


def wheel(directory: Path, name: str, version: str, requires: tuple[str, ...]) -> Path:
    """A minimal pure-Python wheel, identical on every build."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    extras = sorted({r.split("extra == '")[1].rstrip("'") for r in requires if "extra ==" in r})
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.9\n"
    metadata += "".join(f"Provides-Extra: {e}\n" for e in extras)
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = with_record(
        {
            f"{module}/__init__.py": f"VERSION = {version!r}\n".encode(),
            f"{info}/METADATA": metadata.encode(),
            f"{info}/WHEEL": WHEEL_FILE,
        },
        info,
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, date_time=_TIME), data)
    target = directory / f"{module}-{version}-py3-none-any.whl"
    target.write_bytes(buffer.getvalue())
    os.utime(target, (_MTIME, _MTIME))
    return target


def build_index(directory: Path, *, past: bool = False) -> Path:
    """Every release, or (``past``) only those out when the fixtures were locked."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, versions in RELEASES.items():
        for version, requires in versions.items():
            if not (past and (name, version) in NEWER):
                wheel(directory, name, version, requires)
    return directory


def sha256s(directory: Path, name: str, version: str) -> list[str]:
    """What the index client reports for a release: the sha256 of each of its files."""
    return [
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.glob(f"{name.replace('-', '_')}-{version}-*"))
    ]


@pytest.fixture(scope="session")
def manifest_dists(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("manifest-index"))


@pytest.fixture(scope="module")
def manifest_index(manifest_dists: Path) -> Iterator[str]:
    """The served index's address (``http://127.0.0.1:PORT``); its simple API is under /simple/."""
    with serve(manifest_dists) as index:
        yield index.url.removesuffix("/simple/")
