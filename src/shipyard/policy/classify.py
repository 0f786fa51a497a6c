"""What a change is, observed from the change itself: the declared type is a claim, this is evidence.

Pure: it reads the files' contents before and after (given by the caller), never the disk. Python is
compared by AST, manifests by parsing them, everything else by path. Each observation carries the
evidence for it, in words a reviewer can check, and ``reconcile`` keeps the more conservative of the
declared and the observed types under the active policy.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pathspec import GitIgnoreSpec

from shipyard.model import ChangedFile, ChangeType

from .config import RoutingRules

MAX_EVIDENCE = 12
"""Evidence lines kept per classification; the rest are counted."""


@dataclass(frozen=True, kw_only=True)
class Classification:
    """The types a change shows, most telling first, and the evidence for each."""

    types: tuple[ChangeType, ...]
    evidence: tuple[str, ...]

    @property
    def primary(self) -> ChangeType:
        return self.types[0]


@dataclass(frozen=True, kw_only=True)
class ResolvedType:
    """The type the policy routes by, and how it was chosen from the declared and observed ones."""

    change_type: ChangeType
    declared: ChangeType
    observed: tuple[ChangeType, ...]
    evidence: tuple[str, ...]
    note: str

    @property
    def overridden(self) -> bool:
        return self.change_type is not self.declared

    @property
    def confirmed(self) -> bool:
        """The declared type is what the change shows: nothing worth adding to a decision."""
        return not self.overridden and self.declared in self.observed


def _spec(*patterns: str) -> GitIgnoreSpec:
    return GitIgnoreSpec.from_lines(patterns)


AUTH = _spec(
    "**/auth/**", "**/authn/**", "**/authz/**", "**/security/**", "**/permissions/**",
    "**/*auth*.py", "**/*permission*.py", "**/*crypto*.py", "**/*password*.py", "**/*oauth*",
    "**/*saml*", "**/*jwt*",
)  # fmt: skip
MIGRATIONS = _spec(
    "**/migrations/**", "**/alembic/versions/**", "**/db/migrate/**", "**/migrate/**/*.sql",
    "**/sql/migrations/**", "**/flyway/**", "**/liquibase/**", "**/*.migration.sql",
)  # fmt: skip
INFRASTRUCTURE = _spec(
    "Dockerfile", "Dockerfile.*", "*.Dockerfile", "*.dockerfile", "docker-compose*.yml",
    "docker-compose*.yaml", "compose.yml", "compose.yaml", "*.tf", "*.tfvars", "*.hcl",
    "**/terraform/**", "**/k8s/**", "**/kubernetes/**", "**/helm/**", "**/charts/**",
    "Chart.yaml", "kustomization.yaml", "**/.github/workflows/**", ".gitlab-ci.yml",
    "**/.circleci/**", "Jenkinsfile", "azure-pipelines.yml", "**/infrastructure/**",
    "**/ansible/**", "Procfile", "fly.toml", "render.yaml", "app.yaml", "serverless.yml",
)  # fmt: skip
DOCS = _spec(
    "*.md", "*.rst", "*.adoc", "docs/**", "doc/**", "README*", "CHANGELOG*", "CHANGES*", "HISTORY*",
    "LICENSE*", "COPYING*", "AUTHORS*", "CONTRIBUTING*", "CODE_OF_CONDUCT*", "NOTICE*",
    "!docs/**/*.py", "!doc/**/*.py",
)  # fmt: skip
TESTS = _spec("tests/**", "test/**", "**/tests/**", "test_*.py", "*_test.py", "conftest.py")
REQUIREMENTS = _spec(
    "requirements*.txt", "requirements/**/*.txt", "requirements/**/*.in", "requirements*.in",
    "constraints*.txt",
)  # fmt: skip
LOCK_FILES = _spec(
    "poetry.lock", "uv.lock", "pdm.lock", "Pipfile.lock", "package-lock.json", "yarn.lock",
    "pnpm-lock.yaml", "npm-shrinkwrap.json", "Cargo.lock", "go.sum", "Gemfile.lock",
    "composer.lock",
)  # fmt: skip
_DEP_TABLES_JSON = ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies")


def classify(files: Sequence[ChangedFile]) -> Classification:
    """The types this change shows, judged from its files; see ``docs/policy.md`` for the rules."""
    evidence: list[str] = []
    special: list[ChangeType] = []
    claimed: set[str] = set()
    for kind, spec, what in (
        (ChangeType.AUTH_CHANGE, AUTH, "an authentication or security-sensitive path"),
        (ChangeType.DATABASE_MIGRATION, MIGRATIONS, "a database migration"),
        (ChangeType.INFRASTRUCTURE, INFRASTRUCTURE, "infrastructure or CI configuration"),
    ):
        hits = [p for f in files for p in _paths(f) if spec.match_file(p)]
        if hits:
            special.append(kind)
            claimed.update(hits)
            evidence.append(f"{kind.value}: {_listing(hits)} {_is(hits)} {what}")
    # Files a sensitive path already explains do not also decide the primary type.
    rest = [f for f in files if not any(p in claimed for p in _paths(f))]
    kinds = list(special)
    if rest or not special:
        primary, why = _primary(rest)
        kinds.append(primary)
        evidence += [f"{primary.value}: {line}" for line in why]
    types = tuple(dict.fromkeys(kinds))
    if len(evidence) > MAX_EVIDENCE:
        evidence[MAX_EVIDENCE - 1 :] = [f"… and {len(evidence) - MAX_EVIDENCE + 1} more findings"]
    return Classification(types=types, evidence=tuple(evidence))


def reconcile(
    declared: ChangeType, observed: Classification, routing: RoutingRules
) -> ResolvedType:
    """Keep whichever of the declared and observed types routes to the more conservative action.

    On a tie the declared type stays: it is the more specific claim, and it is not more permissive.
    """
    chosen = declared
    for kind in observed.types:
        if routing.route(kind).severity > routing.route(chosen).severity:
            chosen = kind
    seen = ", ".join(t.value for t in observed.types)
    if chosen is declared and declared in observed.types:
        note = f"declared {declared.value}, confirmed by the change"
    elif chosen is declared:
        note = (
            f"declared {declared.value}; the change looks like {seen}, which routes no more "
            f"conservatively ({routing.route(observed.primary).value})"
        )
    else:
        note = (
            f"declared {declared.value} ({routing.route(declared).value}), but the change is "
            f"{chosen.value} ({routing.route(chosen).value}): keeping the more conservative type"
        )
    return ResolvedType(
        change_type=chosen,
        declared=declared,
        observed=observed.types,
        evidence=observed.evidence,
        note=note,
    )


# --- the primary type -----------------------------------------------------------------------------


def _primary(files: Sequence[ChangedFile]) -> tuple[ChangeType, list[str]]:
    if not files:
        return ChangeType.OTHER, ["the change touches no files"]
    for check in (_formatting, _documentation, _dependency_update, _tests_only):
        found = check(files)
        if found is not None:
            return found
    return _code_change(files)


def _documentation(files: Sequence[ChangedFile]) -> tuple[ChangeType, list[str]] | None:
    docs = [f.path for f in files if _all_match(DOCS, f)]
    python: list[str] = []
    for f in files:
        if f.path in docs:
            continue
        if not _is_python(f) or f.status != "M" or _ast_equal(f, docstrings=False) is not True:
            return None
        python.append(f.path)
    why = [f"{_listing(docs)} {_is(docs)} documentation"] if docs else []
    if python:
        why.append(
            f"{_listing(python)}: only docstrings or comments changed "
            "(the code's syntax tree without docstrings is identical)"
        )
    return ChangeType.DOCUMENTATION, why


def _formatting(files: Sequence[ChangedFile]) -> tuple[ChangeType, list[str]] | None:
    if not all(_is_python(f) and f.status == "M" for f in files):
        return None
    if not all(_ast_equal(f, docstrings=True) for f in files):
        return None
    paths = [f.path for f in files]
    return ChangeType.FORMATTING, [
        f"{_listing(paths)}: identical syntax tree before and after (layout only)"
    ]


def _dependency_update(files: Sequence[ChangedFile]) -> tuple[ChangeType, list[str]] | None:
    why: list[str] = []
    for f in files:
        if f.status != "M":
            return None
        if LOCK_FILES.match_file(f.path):
            why.append(f"{f.path} is a lock file")
            continue
        checker = _manifest_checker(f.path)
        if checker is None or f.before is None or f.after is None:
            return None
        problem = checker(f.before, f.after)
        if problem is not None:
            return None
        why.append(f"{f.path}: only dependency versions changed")
    return ChangeType.DEPENDENCY_UPDATE, why


def _tests_only(files: Sequence[ChangedFile]) -> tuple[ChangeType, list[str]] | None:
    paths = [p for f in files for p in _paths(f)]
    if all(TESTS.match_file(p) for p in paths):
        return ChangeType.TESTS, [f"{_listing(paths)} {_is(paths)} test code only"]
    return None


def _code_change(files: Sequence[ChangedFile]) -> tuple[ChangeType, list[str]]:
    code = [f for f in files if not any(TESTS.match_file(p) for p in _paths(f))]
    unreadable = [f.path for f in code if not _is_python(f)]
    tests_changed = len(code) < len(files)
    api = _api_changes(f for f in code if _is_python(f))
    if api.broken:
        return ChangeType.API_CHANGE, api.broken
    if api.added:
        return ChangeType.FEATURE, api.added
    if unreadable:
        return ChangeType.OTHER, [
            f"{_listing(unreadable)}: not Python source, so what changed cannot be judged"
        ]
    if api.unparsable:
        return ChangeType.OTHER, [f"{_listing(api.unparsable)}: not valid Python before or after"]
    changed = [f.path for f in code]
    if tests_changed:
        return ChangeType.FEATURE, [
            f"{_listing(changed)} changed with tests: behaviour changes, public API unchanged"
        ]
    return ChangeType.REFACTOR, [
        f"{_listing(changed)}: code restructured, public API unchanged and no tests changed"
    ]


# --- Python -------------------------------------------------------------------------------------


def _is_python(f: ChangedFile) -> bool:
    return f.path.endswith((".py", ".pyi"))


def _parse(text: str | None) -> ast.Module | None:
    if text is None:
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _ast_equal(f: ChangedFile, *, docstrings: bool) -> bool | None:
    """Whether before and after have the same syntax tree (None: one side is not valid Python).

    With ``docstrings`` the comparison also requires the same comments, so a comment-only change is
    documentation, not formatting.
    """
    before, after = _parse(f.before), _parse(f.after)
    if before is None or after is None:
        return None
    if not docstrings:
        before, after = _without_docstrings(before), _without_docstrings(after)
        return ast.dump(before) == ast.dump(after)
    return ast.dump(before) == ast.dump(after) and _comments(f.before) == _comments(f.after)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _comments(text: str | None) -> list[str]:
    try:
        tokens = tokenize.generate_tokens(io.StringIO(text or "").readline)
        return [t.string for t in tokens if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):
        return []


@dataclass
class _Api:
    broken: list[str]
    added: list[str]
    unparsable: list[str]


def _api_changes(files: Iterable[ChangedFile]) -> _Api:
    api = _Api(broken=[], added=[], unparsable=[])
    for f in files:
        before = _parse(f.before) if f.before is not None else ast.Module(body=[], type_ignores=[])
        after = _parse(f.after) if f.after is not None else ast.Module(body=[], type_ignores=[])
        if before is None or after is None:
            api.unparsable.append(f.path)
            continue
        if not _is_public_module(f.old_path or f.path) and not _is_public_module(f.path):
            continue
        old, new = public_api(before), public_api(after)
        for name, sig in old.items():
            if name not in new:
                api.broken.append(f"{f.path}: public {name} was removed")
            elif new[name] != sig:
                verdict = _compatible(sig, new[name])
                if verdict is None:
                    api.broken.append(
                        f"{f.path}: signature of {name} changed: ({sig}) → ({new[name]})"
                    )
                else:
                    api.added.append(f"{f.path}: {name} {verdict}")
        added = [n for n in new if n not in old]
        if added:
            api.added.append(f"{f.path}: new public {_listing(added)}")
    return api


def _is_public_module(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return not any(p.startswith("_") and p not in ("__init__.py", "__main__.py") for p in parts)


def public_api(tree: ast.Module) -> dict[str, str]:
    """Public names of a module and their signatures (``""`` for names that are not callables).

    Names starting with ``_`` are private, except ``__init__`` of a public class; ``__all__``, when
    the module sets it as a literal, is the list of public top-level names.
    """
    exported = _dunder_all(tree)
    out: dict[str, str] = {}
    for node in tree.body:
        for name, sig in _definitions(node):
            public = name in exported if exported is not None else not name.startswith("_")
            if not public:
                continue
            out[name] = sig
            if isinstance(node, ast.ClassDef):
                for child in node.body:
                    for member, member_sig in _definitions(child):
                        if not member.startswith("_") or member == "__init__":
                            out[f"{name}.{member}"] = member_sig
    return out


def _definitions(node: ast.stmt) -> list[tuple[str, str]]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return [(node.name, ast.unparse(node.args))]
    if isinstance(node, ast.ClassDef):
        return [(node.name, "class")]
    if isinstance(node, ast.Assign):
        return [(t.id, "") for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [(node.target.id, "")]
    return []


def _dunder_all(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return set(value)
    return None


def _compatible(old: str, new: str) -> str | None:
    """How ``new`` extends ``old`` without breaking a caller, or None when it may break one.

    Compatible: the old parameters keep their names, kinds and order, and every new parameter has
    a default (or is ``*args``/``**kwargs``). Annotations and default values may change.
    """
    before, after = _params(old), _params(new)
    if before is None or after is None:
        return None
    old_positional = [p for p in before if p[1] in ("posonly", "pos")]
    new_positional = [p for p in after if p[1] in ("posonly", "pos")]
    if [p[:2] for p in new_positional[: len(old_positional)]] != [p[:2] for p in old_positional]:
        return None
    old_names = {p[0]: p for p in before}
    for name, kind, has_default in after:
        previous = old_names.get(name)
        if previous is None:
            if not has_default and kind not in ("var", "varkw"):
                return None
        elif previous[1] != kind or (previous[2] and not has_default):
            return None
    if any(p[0] not in {q[0] for q in after} for p in before):
        return None
    added = [p[0] for p in after if p[0] not in old_names]
    return (
        f"gains optional parameters {', '.join(added)}"
        if added
        else "changes annotations or defaults"
    )


def _params(signature: str) -> list[tuple[str, str, bool]] | None:
    try:
        fn = ast.parse(f"def f({signature}): pass").body[0]
    except SyntaxError:
        return None
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    first_default = len(positional) - len(a.defaults)
    out = [
        (p.arg, "posonly" if i < len(a.posonlyargs) else "pos", i >= first_default)
        for i, p in enumerate(positional)
    ]
    out += [
        (p.arg, "kwonly", d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
    ]
    if a.vararg:
        out.append((f"*{a.vararg.arg}", "var", True))
    if a.kwarg:
        out.append((f"**{a.kwarg.arg}", "varkw", True))
    return out


# --- manifests ------------------------------------------------------------------------------------


def _manifest_checker(path: str) -> Callable[[str, str], str | None] | None:
    name = PurePosixPath(path).name
    if REQUIREMENTS.match_file(path):
        return _requirements_versions_only
    if name == "pyproject.toml":
        return _pyproject_versions_only
    if name == "Pipfile":
        return _pipfile_versions_only
    if name == "package.json":
        return _package_json_versions_only
    return None


def _requirements_versions_only(before: str, after: str) -> str | None:
    old, new = _requirement_lines(before), _requirement_lines(after)
    if old is None or new is None:
        return "a line is not a requirement"
    if old != new:
        return "requirements were added, removed or changed beyond their versions"
    return None


def _requirement_lines(text: str) -> list[tuple[str, ...]] | None:
    """Each requirement as (name, extras, marker), options as themselves, in file order."""
    out: list[tuple[str, ...]] = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        head = line.split(" --", 1)[0].strip()  # per-requirement options (--hash) follow a version
        if head.startswith("-"):
            if not head.startswith("--hash"):
                out.append((head,))
            continue
        try:
            req = Requirement(head)
        except InvalidRequirement:
            return None
        out.append((canonicalize_name(req.name), ",".join(sorted(req.extras)), str(req.marker)))
    return out


def _pyproject_versions_only(before: str, after: str) -> str | None:
    old, new = _toml(before), _toml(after)
    if old is None or new is None:
        return "not valid TOML"
    return None if _strip_pyproject(old) == _strip_pyproject(new) else "more than versions changed"


def _strip_pyproject(data: dict[str, Any]) -> Any:
    data = json.loads(json.dumps(data))
    project = data.get("project", {})
    if isinstance(project, dict):
        project.pop("version", None)
        project["dependencies"] = _names(project.get("dependencies", []))
        optional = project.get("optional-dependencies", {})
        if isinstance(optional, dict):
            project["optional-dependencies"] = {k: _names(v) for k, v in optional.items()}
    groups = data.get("dependency-groups", {})
    if isinstance(groups, dict):
        data["dependency-groups"] = {k: _names(v) for k, v in groups.items()}
    build = data.get("build-system", {})
    if isinstance(build, dict):
        build["requires"] = _names(build.get("requires", []))
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    if isinstance(poetry, dict):
        for key in ("dependencies", "dev-dependencies"):
            if isinstance(poetry.get(key), dict):
                poetry[key] = sorted(poetry[key])
    return data


def _pipfile_versions_only(before: str, after: str) -> str | None:
    old, new = _toml(before), _toml(after)
    if old is None or new is None:
        return "not valid TOML"
    for data in (old, new):
        for key in ("packages", "dev-packages"):
            if isinstance(data.get(key), dict):
                data[key] = sorted(data[key])
    return None if old == new else "more than versions changed"


def _package_json_versions_only(before: str, after: str) -> str | None:
    try:
        old, new = json.loads(before), json.loads(after)
    except json.JSONDecodeError:
        return "not valid JSON"
    for data in (old, new):
        if not isinstance(data, dict):
            return "not a package manifest"
        data.pop("version", None)
        for key in _DEP_TABLES_JSON:
            if isinstance(data.get(key), dict):
                data[key] = sorted(data[key])
    return None if old == new else "more than versions changed"


def _names(requirements: object) -> object:
    if not isinstance(requirements, list):
        return requirements
    out: list[str] = []
    for item in requirements:
        try:
            req = Requirement(str(item))
        except InvalidRequirement:
            out.append(str(item))
            continue
        out.append(f"{canonicalize_name(req.name)}[{','.join(sorted(req.extras))}];{req.marker}")
    return out


def _toml(text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


# --- helpers --------------------------------------------------------------------------------------


def _paths(f: ChangedFile) -> list[str]:
    return [f.path, *([f.old_path] if f.old_path and f.old_path != f.path else [])]


def _all_match(spec: GitIgnoreSpec, f: ChangedFile) -> bool:
    return all(spec.match_file(p) for p in _paths(f))


def _listing(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _is(items: Sequence[str]) -> str:
    return "is" if len(items) == 1 else "are"
