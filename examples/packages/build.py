"""Build the example package index: every example package version as a wheel, plus the test tools.

    python examples/packages/build.py OUT_DIR

Each ``<dist>/<version>/`` folder here holds the importable sources of one release. They become
``py3-none-any`` wheels written directly with zipfile (no build backend runs), byte-for-byte the
same on every run. Then the wheels of the test tools the example pins (pytest, coverage and their
dependencies) are fetched with the host's normal pip configuration: the one step that may use the
network, skipped when OUT_DIR already has them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

PACKAGES = Path(__file__).resolve().parent
TOOLS = ("pytest==9.2.0", "coverage==7.17.3")
"""The test tools the example's requirements-dev.txt pins; the index must carry them."""
GATE_TOOLS = ("pytest-benchmark==5.3.1", "psycopg[binary]==3.3.9", "redis==8.1.0")
"""What the gates' own tests install besides: benchmarks, and clients for the test services."""

# Fixed times keep the wheels deterministic; the file times become PEP 700 upload times.
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
_FIRST_UPLOAD = datetime(2024, 1, 1, tzinfo=UTC)
_TOOLS_MARKER = ".tools.json"


def sources() -> list[tuple[str, Version, Path]]:
    """(distribution name, version, source folder) for every example release, in order."""
    found = []
    for dist_dir in sorted(
        p for p in PACKAGES.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
    ):
        for version_dir in sorted(p for p in dist_dir.iterdir() if p.is_dir()):
            found.append((dist_dir.name, Version(version_dir.name), version_dir))
    return sorted(found, key=lambda s: (s[0], s[1]))


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _summary(source: Path, top_level: list[str]) -> str:
    """The first line of the package's docstring."""
    init = source / top_level[0] / "__init__.py"
    text = init.read_text(encoding="utf-8") if init.is_file() else ""
    if text.startswith('"""'):
        return text[3:].split("\n", 1)[0].strip().rstrip('"').strip()
    return f"{top_level[0]} (shipyard example package)"


def wheel_bytes(dist: str, version: Version, source: Path) -> tuple[str, bytes]:
    """The file name and content of the wheel for one example release."""
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    top_level = sorted({p.relative_to(source).parts[0].removesuffix(".py") for p in files})
    name = canonicalize_name(dist).replace("-", "_")
    dist_info = f"{name}-{version}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\n"
        f"Name: {dist}\n"
        f"Version: {version}\n"
        f"Summary: {_summary(source, top_level)}\n"
        "Requires-Python: >=3.9\n"
        "License: Apache-2.0\n"
    )
    wheel = (
        "Wheel-Version: 1.0\n"
        "Generator: shipyard-examples\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    )
    entries = [(p.relative_to(source).as_posix(), p.read_bytes()) for p in files]
    entries += [
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", wheel.encode()),
        (f"{dist_info}/top_level.txt", ("\n".join(top_level) + "\n").encode()),
    ]
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    filename = f"{name}-{version}-py3-none-any.whl"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in entries:
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return filename, out.getvalue()


def build_wheels(out_dir: Path) -> list[Path]:
    """Write every example release's wheel into ``out_dir``; unchanged wheels are left untouched."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    releases = sources()
    for dist, version, source in releases:
        filename, data = wheel_bytes(dist, version, source)
        target = out_dir / filename
        if not target.is_file() or target.read_bytes() != data:
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        # Later versions of a package were "uploaded" later: a month apart, in version order.
        rank = [v for d, v, _ in releases if d == dist].index(version)
        uploaded = (_FIRST_UPLOAD + timedelta(days=30 * rank)).timestamp()
        os.utime(target, (uploaded, uploaded))
        written.append(target)
    return written


def _python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def fetch_tools(
    out_dir: Path, requirements: Sequence[str] = TOOLS + GATE_TOOLS, *, timeout: float = 600
) -> list[Path]:
    """Download the test tools' wheels (with dependencies) for this interpreter and platform.

    Uses the host's pip configuration on purpose (its mirrors, proxies): this runs once, at setup.
    """
    marker = out_dir / _TOOLS_MARKER
    wanted = {"requirements": list(requirements), "python": _python_version()}
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        files = [out_dir / f for f in recorded.get("files", [])]
        if (
            {k: recorded.get(k) for k in wanted} == wanted
            and files
            and all(f.is_file() for f in files)
        ):
            return files
    before = set(out_dir.glob("*.whl"))
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
    argv += ["--only-binary=:all:", "--python-version", _python_version(), "--dest", str(out_dir)]
    done = subprocess.run(
        [*argv, *requirements],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"could not download {' '.join(requirements)}:\n{done.stderr.strip()}")
    names = {canonicalize_name(Requirement(r).name) for r in requirements}
    ours = {canonicalize_name(d) for d, _, _ in sources()}
    files = sorted(p for p in out_dir.glob("*.whl") if parse_wheel_filename(p.name)[0] not in ours)
    _check_platform(files, names)
    marker.write_text(
        json.dumps({**wanted, "files": [f.name for f in files]}, indent=1) + "\n", encoding="utf-8"
    )
    new = sorted(set(files) - before)
    print(f"fetched {len(new)} tool wheel(s) into {out_dir}", file=sys.stderr)
    return files


def _check_platform(files: Sequence[Path], names: set[str]) -> None:
    """Every tool wheel must install on this interpreter (e.g. coverage's cp311 manylinux)."""
    supported = set(sys_tags())
    for path in files:
        name, _, _, tags = parse_wheel_filename(path.name)
        if name in names and not tags & supported:
            raise SystemExit(f"{path.name} does not fit this interpreter; delete it and run again.")


def build(out_dir: Path, *, tools: bool = True) -> list[Path]:
    """The whole example index in ``out_dir``: the example wheels, then (if ``tools``) the tools."""
    wheels = build_wheels(out_dir)
    return wheels + (fetch_tools(out_dir) if tools else [])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python examples/packages/build.py OUT_DIR", file=sys.stderr)
        return 2
    out_dir = Path(args[0]).resolve()
    files = build(out_dir)
    print(f"{len(files)} wheels in {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
