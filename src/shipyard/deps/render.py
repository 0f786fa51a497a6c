"""Updates in words: the report's section, the commit message (which is also the review request's
description) and the one-line summaries the CLI shows. Input is the JSON shape of ``PlannedUpdate``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shipyard.events import Event, EventType


def age(update: Mapping[str, Any]) -> str:
    days = update.get("release_age_days")
    if days is None:
        return "age unknown"
    return f"{days:.0f} days old" if days >= 1 else f"{days * 24:.0f} hours old"


def line(update: Mapping[str, Any]) -> str:
    """``alpha 1.0.0 → 1.1.0 (minor, 12 days old) in requirements.txt``."""
    where = ", ".join(update.get("manifests") or [update["manifest"]])
    return (
        f"{update['package']} {update['current']} → {update['target']} "
        f"({update['update_type']}, {age(update)}) in {where}"
    )


def vulnerability_lines(update: Mapping[str, Any]) -> list[str]:
    out = []
    for v in update.get("vulnerabilities", ()):
        aliases = f" ({', '.join(v['aliases'])})" if v.get("aliases") else ""
        fixed = ", ".join(v.get("fixed_in", ())) or "no fixed version listed"
        out.append(f"{v['id']}{aliases}: {v.get('summary') or 'no summary'}; fixed in {fixed}")
    return out


def commit_message(title: str, updates: Sequence[Mapping[str, Any]], risk: str = "") -> str:
    """The change's commit message: every update, its links and the advisories it fixes."""
    body = []
    for u in updates:
        body.append(f"- {line(u)}")
        body += [f"  fixes {v}" for v in vulnerability_lines(u)]
        body += [f"  {label}: {url}" for label, url in list(u.get("links", {}).items())[:4]]
    if risk:
        body += ["", f"Risk: {risk}"]
    return f"{title}\n\n" + "\n".join(body) + "\n\nProposed by shipyard's deps blueprint."


def deps_section(events: Sequence[Event]) -> list[str]:
    """The report's dependency section, from a run's ``deps.updates`` and ``deps.risk`` events."""
    updates = [e.data for e in events if e.type == EventType.DEPS_UPDATES.value]
    risk = [e.data for e in events if e.type == EventType.DEPS_RISK.value]
    return report_section(updates[-1] if updates else None, risk[-1] if risk else None)


def report_section(
    updates_event: Mapping[str, Any] | None, risk_event: Mapping[str, Any] | None
) -> list[str]:
    """Markdown for the run report: updates (from → to, type, age, links), advisories fixed, risk."""
    if not updates_event:
        return []
    updates = updates_event.get("updates", [])
    kind = updates_event.get("kind", "update")
    out = ["## Updates", ""]
    if kind == "lock":
        out += [
            "Lock file maintenance: every lock file re-resolved, transitive pins refreshed.",
            "",
        ]
    if updates:
        out += ["| package | from | to | type | release age | links |", "|---|---|---|---|---|---|"]
        for u in updates:
            links = " ".join(f"[{label}]({url})" for label, url in u.get("links", {}).items())
            out.append(
                f"| {u['package']} | {u['current']} | {u['target']} | {u['update_type']} | "
                f"{age(u)} | {links} |"
            )
        out.append("")
    fixed = [(u["package"], v) for u in updates for v in vulnerability_lines(u)]
    if fixed:
        out += ["### Vulnerabilities fixed", ""]
        out += [f"- {package}: {text}" for package, text in fixed]
        out.append("")
    if risk_event:
        breaking = risk_event.get("breaking_changes") or []
        out += [
            f"### Risk: {risk_event.get('risk_level')} ({risk_event.get('source')})",
            "",
            f"- proceed without review: {'yes' if risk_event.get('proceed') else 'no'}",
        ]
        out += [f"- {reason}" for reason in risk_event.get("reasons", [])]
        out += [f"- breaking: {change}" for change in breaking]
        out += [f"- note: {problem}" for problem in risk_event.get("problems", [])]
        out.append("")
    return out
