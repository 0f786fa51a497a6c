"""New version constraints for ranges, by range strategy: pin, bump or widen.

Works on PEP 440 specifiers (``>=1.2,<2``, ``~=1.4``, ``==1.*``) and on poetry's constraints
(``^1.2``, ``~1.2``, a bare version, ``*``), with ``packaging`` doing all version arithmetic.
"""

from __future__ import annotations

import re
from enum import StrEnum

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from shipyard.errors import DependencyError


class RangeStrategy(StrEnum):
    """What to do with a range when a release outside (or above the floor of) it is wanted.

    - ``pin``: replace the range with the exact new version (``==2.1.0``).
    - ``bump``: raise the range's floor to the new version, keeping its shape (``>=1.2,<2`` → ``>=1.5,<2``;
      ``^1.2`` → ``^1.5``), widening the ceiling only when the new version is above it.
    - ``widen``: keep the floor and move the ceiling just far enough to admit the new version
      (``>=1.2,<2`` → ``>=1.2,<3``); a range that already admits it is left as written.
    """

    PIN = "pin"
    BUMP = "bump"
    WIDEN = "widen"


_POETRY = re.compile(r"^\s*(?P<op>\^|~(?!=)|)\s*(?P<version>[0-9][^\s,]*)\s*$")


def range_for(strategy: str | RangeStrategy, specifier: str, new_version: Version) -> str:
    """The constraint text that replaces ``specifier`` so that ``new_version`` is allowed.

    ``specifier`` is written PEP 440 style or poetry style; the result keeps that style. Raises
    DependencyError for an unknown strategy or a constraint that cannot be read.
    """
    try:
        how = RangeStrategy(strategy)
    except ValueError:
        raise DependencyError(
            f"unknown range strategy {strategy!r}; use pin, bump or widen."
        ) from None
    text = specifier.strip()
    if text in ("", "*"):
        return f"=={new_version}" if how is RangeStrategy.PIN else text if text else ""
    if poetry := _POETRY.match(text):
        old = _version(poetry["version"], specifier)
        widened = _poetry(how, poetry["op"], old, new_version)
        return specifier if widened == f"{poetry['op']}{old}" else widened
    try:
        clauses = [Specifier(part.strip()) for part in text.split(",") if part.strip()]
    except InvalidSpecifier as exc:
        raise DependencyError(
            f"cannot read the version constraint {specifier!r} ({exc}); "
            "write it as a PEP 440 specifier such as '>=1.2,<2'."
        ) from exc
    if how is RangeStrategy.PIN:
        return f"=={new_version}"
    allowed = SpecifierSet(text).contains(new_version, prereleases=True)
    if how is RangeStrategy.WIDEN and allowed:
        return specifier
    out: list[str] = []
    for clause in clauses:
        out += _clause(how, clause, new_version)
    separator = ", " if ", " in text else ","
    result = separator.join(dict.fromkeys(out))
    if not SpecifierSet(result).contains(new_version, prereleases=True):
        raise DependencyError(f"cannot make {specifier!r} admit {new_version}; pin it instead.")
    return result


def _version(text: str, specifier: str) -> Version:
    try:
        return Version(text.removesuffix(".*"))
    except InvalidVersion as exc:
        raise DependencyError(f"cannot read the version in constraint {specifier!r}.") from exc


def _precision(template: Version | str, new: Version, *, at_least: int = 1) -> str:
    """``new`` cut or padded to as many release segments as ``template`` has."""
    count = max(len(Version(str(template)).release), at_least)
    release = (*new.release, *([0] * count))[:count]
    return ".".join(str(n) for n in release)


def _next(template: str, new: Version) -> str:
    """The smallest bound above ``new`` written with ``template``'s number of segments."""
    count = len(Version(template).release)
    release = list((*new.release, *([0] * count))[:count])
    release[-1] += 1
    return ".".join(str(n) for n in release)


def _clause(how: RangeStrategy, clause: Specifier, new: Version) -> list[str]:
    op, version = clause.operator, clause.version
    if op == "!=":
        return [] if clause.contains(new, prereleases=True) is False else [str(clause)]
    if op in ("<", "<="):
        if clause.contains(new, prereleases=True):
            return [str(clause)]
        return [f"<={new}"] if op == "<=" else [f"<{_next(version, new)}"]
    if op == "===":
        return [f"==={new}"]
    if op == "==" and version.endswith(".*"):
        base = version.removesuffix(".*")
        if how is RangeStrategy.BUMP:
            return [f"=={_precision(base, new)}.*"]
        return [f">={_lower(base, new)}", f"<{_next(base, new)}"]
    if op == "==":
        return [f"=={new}"]
    if op == "~=":
        head = ".".join(version.split(".")[:-1])
        if how is RangeStrategy.BUMP:
            return [f"~={_precision(version, new, at_least=2)}"]
        return [f">={_lower(version, new)}", f"<{_next(head, new)}"]
    # >= and >: the floor
    if how is RangeStrategy.BUMP or not clause.contains(new, prereleases=True):
        return [f">={new}"]
    return [str(clause)]


def _lower(floor: str, new: Version) -> str:
    """The floor as written, or the new version when it lies below it."""
    return str(new) if new < Version(floor) else floor


def _poetry(how: RangeStrategy, op: str, old: Version, new: Version) -> str:
    if how is RangeStrategy.PIN or op == "":
        return str(new)
    if how is RangeStrategy.BUMP:
        return f"{op}{_precision(old, new)}"
    # widen: caret allows changes left of the first non-zero segment, tilde of the minor
    if op == "^":
        first = next((i for i, n in enumerate(old.release) if n), len(old.release) - 1)
        ceiling_template = ".".join(["0"] * (first + 1))
    else:
        ceiling_template = "0.0" if len(old.release) > 1 else "0"
    ceiling = Version(_next(ceiling_template, old))
    if old <= new < ceiling:
        return f"{op}{old}"  # already admitted: the caller keeps the text as written
    return f">={min(old, new)},<{_next(ceiling_template, max(old, new))}"


def poetry_to_pep440(constraint: str) -> str:
    """A poetry constraint (``^1.2``, ``~1.2``, ``1.2.3``, ``*``, ``>=1,<2``) as a PEP 440 specifier."""
    if "||" in constraint or "|" in constraint:
        raise DependencyError(
            f"the poetry constraint {constraint!r} has alternatives (||); shipyard cannot "
            "update it: write one range, or ignore the package."
        )
    out: list[str] = []
    for raw in constraint.split(","):
        part = raw.strip()
        if part in ("", "*"):
            continue
        match = _POETRY.match(part)
        if match is None:
            out.append(part)
            continue
        op, text = match["op"], match["version"]
        if op == "" and text.endswith(".*"):
            out.append(f"=={text}")
            continue
        old = _version(text, constraint)
        if op == "":
            out.append(f"=={text}")
        elif op == "^":
            first = next((i for i, n in enumerate(old.release) if n), len(old.release) - 1)
            out += [f">={text}", f"<{_next('.'.join(['0'] * (first + 1)), old)}"]
        else:
            out += [f">={text}", f"<{_next('0.0' if len(old.release) > 1 else '0', old)}"]
    return ",".join(out)
