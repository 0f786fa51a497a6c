"""The agent's file helper, run INSIDE the sandbox: ``python -I -S inside.py REQUEST.json``.

It reads one JSON request and prints one JSON answer (``{"ok": true, ...}`` or ``{"ok": false,
"error": ...}``). Standard library only: it runs on the sandbox's interpreter with nothing of shipyard
importable. Every path is confined to the workspace; writes refuse ``.git`` and symlinks. The host
imports ``relative`` from here too, so both sides normalise paths the same way.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
from typing import Any

WORKSPACE = "/workspace"
RG = ["rg", "--hidden", "--no-require-git", "--glob", "!.git", "--sort", "path", "--color", "never"]
"""ripgrep as the tools use it: hidden files included, .gitignore respected, .git left out."""
LINE_CHARS = 2000
"""Longer lines are cut when shown (minified files would otherwise fill the context)."""
SNIPPET_LINES = 30
"""At most this much of an edited place is shown back."""
TEXT_BYTES = 16 * 1024**2
"""Larger files are not read whole (search them, or look at parts with run_command)."""


class Refused(Exception):
    """A request the helper will not carry out; the message is shown to the model."""


def relative(path: str) -> str:
    """``path`` as the model gave it, normalised relative to the workspace root ("." for the root)."""
    text = path.strip()
    if not text or "\x00" in text:
        raise Refused(f"refused: {path!r} is not a usable path")
    if text.startswith("/"):
        norm = posixpath.normpath(text)
        if norm == WORKSPACE:
            return "."
        if not norm.startswith(WORKSPACE + "/"):
            raise Refused(
                f"refused: {path} is outside the workspace; give paths relative to its root"
            )
        text = norm[len(WORKSPACE) + 1 :]
    rel = posixpath.normpath(text)
    if rel == ".." or rel.startswith("../"):
        raise Refused(f"refused: {path} leads outside the workspace; give paths inside it")
    return rel


def in_git_dir(rel: str) -> bool:
    return ".git" in rel.split("/")


def resolve(path: str, *, write: bool = False) -> tuple[str, str]:
    """``(relative, absolute)`` for a path that stays in the workspace once symlinks are followed."""
    rel = relative(path)
    full = posixpath.normpath(posixpath.join(WORKSPACE, rel))
    real = os.path.realpath(full)
    if real != WORKSPACE and not real.startswith(WORKSPACE + "/"):
        raise Refused(f"refused: {path} is a symbolic link to {real}, outside the workspace")
    if write:
        if in_git_dir(rel) or in_git_dir(posixpath.relpath(real, WORKSPACE)):
            raise Refused(f"refused: {path} is inside .git; the history is not yours to edit")
        if real != full:
            target = posixpath.relpath(real, WORKSPACE)
            raise Refused(f"refused: {path} goes through a symbolic link; write {target}")
    return rel, real


def numbered(lines: list[str], first: int) -> str:
    out = []
    for n, line in enumerate(lines, first):
        if len(line) > LINE_CHARS:
            line = line[:LINE_CHARS] + f" [... {len(line) - LINE_CHARS} more characters]"
        out.append(f"{n:>6}\t{line}")
    return "\n".join(out)


def lines_of(text: str) -> list[str]:
    """Lines as editors and ``where`` count them: split at "\n" only, a final newline ends a line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def read_text(full: str, path: str) -> str:
    if os.path.isdir(full):
        raise Refused(f"{path} is a directory; use list_files to see what it holds")
    if not os.path.isfile(full):
        raise Refused(f"{path} does not exist")
    size = os.path.getsize(full)
    if size > TEXT_BYTES:
        raise Refused(f"{path} has {size} bytes, too many to read whole; use search instead")
    with open(full, "rb") as f:
        data = f.read()
    if b"\x00" in data[:8192]:
        raise Refused(f"{path} is a binary file ({len(data)} bytes); it is not shown")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def op_read(req: dict[str, Any]) -> dict[str, Any]:
    rel, full = resolve(req["path"])
    lines = lines_of(read_text(full, req["path"]))
    start = max(1, req.get("start_line") or 1)
    end = min(len(lines), req.get("end_line") or len(lines))
    shown: list[str] = []
    size = 0
    for line in lines[start - 1 : end]:
        size += min(len(line), LINE_CHARS) + 8
        if shown and size > req["max_bytes"]:
            break
        shown.append(line)
    last = start + len(shown) - 1
    note = ""
    if last < end:
        note = f"[output cut at {req['max_bytes']} bytes; read on with start_line={last + 1}]"
    return {"path": rel, "text": numbered(shown, start), "start": start, "end": last,
            "total_lines": len(lines), "note": note}  # fmt: skip


def files_under(rel: str) -> list[str]:
    """Files under ``rel`` as ripgrep lists them (.gitignore respected, .git left out), sorted."""
    if shutil.which("rg"):
        where_ = [] if rel == "." else ["--", rel]
        done = subprocess.run([*RG, "--files", *where_], cwd=WORKSPACE, capture_output=True,
                              text=True, check=False)  # fmt: skip
        if done.returncode not in (0, 1):
            raise Refused(f"listing failed: {done.stderr.strip()[:500]}")
        return done.stdout.splitlines()
    found = []  # no ripgrep: every file but .git's
    for root, dirs, files in os.walk(posixpath.join(WORKSPACE, rel)):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        found += [posixpath.relpath(posixpath.join(root, f), WORKSPACE) for f in sorted(files)]
    return found


def op_list(req: dict[str, Any]) -> dict[str, Any]:
    rel, full = resolve(req.get("path") or ".")
    if not os.path.exists(full):
        raise Refused(f"{req.get('path')} does not exist")
    entries = files_under(rel)
    pattern = req.get("pattern")
    if pattern:
        whole = "/" in pattern  # else match file names, as .gitignore does
        entries = [
            e
            for e in entries
            if fnmatch.fnmatchcase(e if whole else posixpath.basename(e), pattern)
        ]
    cap = req["max_entries"]
    return {"entries": entries[:cap], "total": len(entries)}


def glob_args(glob: str) -> list[str]:
    # A plain --glob overrides .gitignore; a file type does not, but matches file names only.
    if "/" in glob:
        return ["--glob", glob]
    negated = glob.startswith("!")
    return ["--type-add", f"sel:{glob.lstrip('!')}", "-T" if negated else "-t", "sel"]


def op_search(req: dict[str, Any]) -> dict[str, Any]:
    rel, _ = resolve(req.get("path") or ".")
    argv = [*RG, "--line-number", "--no-heading", "--with-filename", "--max-columns", "300",
            "--max-columns-preview"]  # fmt: skip
    argv += ["--fixed-strings"] if req.get("fixed_string") else []
    argv += glob_args(req["glob"]) if req.get("glob") else []
    lines: list[str] = []
    size, more = 0, False
    with tempfile.TemporaryFile() as errors:  # a file: a full stderr pipe would stall ripgrep
        with subprocess.Popen([*argv, "-e", req["pattern"], "--", rel], cwd=WORKSPACE,
                              stdout=subprocess.PIPE, stderr=errors) as proc:  # fmt: skip
            for raw in proc.stdout or ():
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                size += len(line) + 1
                if len(lines) >= req["max_matches"] or size > req["max_bytes"]:
                    more = True
                    proc.kill()
                    break
                lines.append(line.removeprefix("./"))
        errors.seek(0)
        err = errors.read().decode("utf-8", errors="replace")
    if not more and proc.returncode not in (0, 1):
        raise Refused(f"search failed: {err.strip()[:500]}")
    return {"matches": lines, "more": more}


def where(text: str, needle: str) -> list[int]:
    """1-based line numbers where each occurrence of ``needle`` starts."""
    found, at = [], text.find(needle)
    while at != -1:
        found.append(text.count("\n", 0, at) + 1)
        at = text.find(needle, at + len(needle))
    return found


def op_edit(req: dict[str, Any]) -> dict[str, Any]:
    rel, full = resolve(req["path"], write=True)
    text = read_text(full, req["path"])
    old, new = req["old"], req["new"]
    lines = lines_of(text)
    hits = where(text, old)
    if not hits:
        first = next((s.strip() for s in old.splitlines() if s.strip()), old.strip())
        stripped = [s.strip() for s in lines]
        near = difflib.get_close_matches(first, stripped, n=3, cutoff=0.6)
        hint = "".join(
            f"\n{numbered([lines[i]], i + 1)}" for i, s in enumerate(stripped) if s in near
        )[:3000]
        raise Refused(
            f"old was not found in {rel} (0 matches); it must match exactly, whitespace included."
            + (f" Lines most like its first line:{hint}" if hint else " Read the file first.")
        )
    if len(hits) > 1 and not req.get("replace_all"):
        shown = "".join(f"\n{numbered([lines[n - 1]], n)}" for n in hits[:10])
        raise Refused(
            f"old matches {len(hits)} times in {rel} (starting at lines "
            f"{', '.join(map(str, hits[:10]))}); add surrounding lines so it matches once, or "
            f"set replace_all to change every one:{shown}"
        )
    changed = text.replace(old, new) if req.get("replace_all") else text.replace(old, new, 1)
    with open(full, "w", encoding="utf-8", newline="") as f:
        f.write(changed)
    after = lines_of(changed)
    lo = max(1, hits[0] - 3)
    hi = min(len(after), hits[0] + new.count("\n") + 3, lo + SNIPPET_LINES - 1)
    return {"path": rel, "replacements": len(hits), "snippet": numbered(after[lo - 1 : hi], lo)}


def op_write(req: dict[str, Any]) -> dict[str, Any]:
    rel, full = resolve(req["path"], write=True)
    if os.path.isdir(full):
        raise Refused(f"{req['path']} is a directory")
    existed = os.path.exists(full)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8", newline="") as f:
        f.write(req["content"])
    return {"path": rel, "created": not existed, "lines": len(lines_of(req["content"]))}


def op_patch(req: dict[str, Any]) -> dict[str, Any]:
    """Applies with git (all or nothing), after checking git reads the paths the host approved."""
    git = ["git", "-c", "core.quotepath=false", "apply", f"-p{req['strip']}"]
    data = req["patch"].encode("utf-8")
    check = subprocess.run([*git, "--check", "--verbose"], input=data, cwd=WORKSPACE,
                           capture_output=True, check=False)  # fmt: skip
    err = check.stderr.decode("utf-8", errors="replace")
    if check.returncode != 0:
        raise Refused(f"the patch does not apply (nothing was changed):\n{err.strip()[:3000]}")
    allowed = set(req["paths"])
    for line in err.splitlines():
        if line.startswith("Checking patch ") and line.endswith("..."):
            names = line[len("Checking patch ") : -3].split(" => ")
            if not set(names) <= allowed:
                raise Refused(
                    f"refused: git reads this patch's paths as {' => '.join(names)}, which its headers do "
                    "not name; write plain unified-diff headers (--- a/PATH, +++ b/PATH)"
                )
    done = subprocess.run([*git], input=data, cwd=WORKSPACE, capture_output=True, check=False)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", errors="replace").strip()[:3000]
        raise Refused(f"the patch does not apply:\n{message}")
    return {"paths": sorted(allowed)}


OPS = {"read": op_read, "list": op_list, "search": op_search, "edit": op_edit,
       "write": op_write, "patch": op_patch}  # fmt: skip


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as f:
        req = json.load(f)
    try:
        answer = {"ok": True, **OPS[req["op"]](req)}
    except Refused as exc:
        answer = {"ok": False, "error": str(exc)}
    except OSError as exc:
        answer = {"ok": False, "error": f"{exc.strerror or exc}: {exc.filename or ''}".strip()}
    sys.stdout.write(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
