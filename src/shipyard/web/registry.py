"""What the server may act on: registered repositories, schedules, their claims, webhook deliveries.

A caller of the API names a repository by its registered name; only an admin registers one, with
its path on this host. Nothing a caller sends is ever used as a host path.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from croniter import croniter
from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shipyard.errors import ConfigError, NotFound, StoreError
from shipyard.store import Store
from shipyard.store.codec import utc
from shipyard.store.tables import repos, schedule_claims, schedules, webhook_deliveries
from shipyard.web.records import reading, writing
from shipyard.workspace import inspect_repo

REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
GITHUB_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}")


@dataclass(frozen=True)
class RepoRecord:
    name: str
    path: str
    github: str | None
    index_url: str | None
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class ScheduleRecord:
    id: str
    repo: str
    blueprint: str
    cron: str
    request: dict[str, Any]
    enabled: bool
    created_at: datetime
    created_by: str


def check_cron(expression: str) -> str:
    """A five-field cron expression (minute hour day month weekday), or ConfigError."""
    text = " ".join(expression.split())
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise ConfigError(
            f"cron {expression!r} is not a five-field cron expression "
            "(minute hour day-of-month month day-of-week), e.g. '0 6 * * 1' for Mondays at 06:00 UTC."
        )
    return text


class Registry:
    """Repositories, schedules, schedule claims and webhook deliveries in the store."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    # --- repositories --------------------------------------------------------------------------

    def add_repo(
        self,
        *,
        name: str,
        path: Path,
        by: str,
        github: str | None = None,
        index_url: str | None = None,
    ) -> RepoRecord:
        """Register a git repository on this host under ``name``."""
        if not REPO_NAME.fullmatch(name):
            raise ConfigError(
                f"repository name {name!r} is not usable: 1 to 64 letters, digits, '.', '_' or '-'."
            )
        _check_github(github)
        _check_index(index_url)
        info = inspect_repo(path)
        record = RepoRecord(
            name=name,
            path=str(info.path),
            github=github,
            index_url=index_url,
            created_at=datetime.now(UTC),
            created_by=by,
        )
        try:
            with writing(self.engine, f"registering repository {name}") as conn:
                conn.execute(insert(repos).values(**record.__dict__))
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConfigError(
                    f"repository {name} (or its path or GitHub name) is already registered; "
                    "choose another name or remove the old entry."
                ) from exc
            raise
        return record

    def repos(self) -> list[RepoRecord]:
        with reading(self.engine, "listing repositories") as conn:
            rows = conn.execute(select(repos).order_by(repos.c.name)).all()
        return [_repo(r) for r in rows]

    def repo(self, name: str) -> RepoRecord:
        with reading(self.engine, f"reading repository {name}") as conn:
            row = conn.execute(select(repos).where(repos.c.name == name)).first()
        if row is None:
            raise NotFound(
                f"no repository named {name!r} is registered; an admin registers it "
                "(POST /api/repos)."
            )
        return _repo(row)

    def repo_for_github(self, full_name: str) -> RepoRecord | None:
        with reading(self.engine, "finding a repository by GitHub name") as conn:
            row = conn.execute(
                select(repos).where(func.lower(repos.c.github) == full_name.lower())
            ).first()
        return None if row is None else _repo(row)

    def update_repo(
        self, name: str, *, github: str | None = None, index_url: str | None = None
    ) -> RepoRecord:
        _check_github(github)
        _check_index(index_url)
        self.repo(name)
        with writing(self.engine, f"updating repository {name}") as conn:
            conn.execute(
                update(repos).where(repos.c.name == name).values(github=github, index_url=index_url)
            )
        return self.repo(name)

    def remove_repo(self, name: str) -> None:
        self.repo(name)
        with writing(self.engine, f"removing repository {name}") as conn:
            used = conn.execute(select(schedules.c.id).where(schedules.c.repo == name)).first()
            if used is not None:
                raise ConfigError(
                    f"repository {name} still has schedules (e.g. {used.id}); remove them first."
                )
            conn.execute(delete(repos).where(repos.c.name == name))

    # --- schedules -----------------------------------------------------------------------------

    def add_schedule(
        self, *, repo: str, blueprint: str, cron: str, request: dict[str, Any], by: str
    ) -> ScheduleRecord:
        self.repo(repo)
        record = ScheduleRecord(
            id="sch_" + secrets.token_hex(4),
            repo=repo,
            blueprint=blueprint,
            cron=check_cron(cron),
            request=request,
            enabled=True,
            created_at=datetime.now(UTC),
            created_by=by,
        )
        with writing(self.engine, "adding a schedule") as conn:
            values = {**record.__dict__, "request_json": json.dumps(request)}
            del values["request"]
            conn.execute(insert(schedules).values(**values))
        return record

    def schedules(self) -> list[ScheduleRecord]:
        with reading(self.engine, "listing schedules") as conn:
            rows = conn.execute(select(schedules).order_by(schedules.c.created_at)).all()
        return [_schedule(r) for r in rows]

    def schedule(self, schedule_id: str) -> ScheduleRecord:
        with reading(self.engine, f"reading schedule {schedule_id}") as conn:
            row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
        if row is None:
            raise NotFound(f"there is no schedule {schedule_id!r}; GET /api/schedules lists them.")
        return _schedule(row)

    def update_schedule(
        self, schedule_id: str, *, cron: str | None = None, enabled: bool | None = None
    ) -> ScheduleRecord:
        self.schedule(schedule_id)
        values: dict[str, Any] = {}
        if cron is not None:
            values["cron"] = check_cron(cron)
        if enabled is not None:
            values["enabled"] = enabled
        if values:
            with writing(self.engine, f"updating schedule {schedule_id}") as conn:
                conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(values))
        return self.schedule(schedule_id)

    def remove_schedule(self, schedule_id: str) -> None:
        self.schedule(schedule_id)
        with writing(self.engine, f"removing schedule {schedule_id}") as conn:
            conn.execute(delete(schedules).where(schedules.c.id == schedule_id))

    def last_due(self, schedule_id: str) -> datetime | None:
        """The latest due time claimed for a schedule."""
        with reading(self.engine, f"reading the claims of schedule {schedule_id}") as conn:
            value = conn.execute(
                select(func.max(schedule_claims.c.due_at)).where(
                    schedule_claims.c.schedule_id == schedule_id
                )
            ).scalar_one()
        return None if value is None else utc(value)

    def claim(self, schedule_id: str, due_at: datetime, *, by: str) -> bool:
        """Claim one due time of a schedule; True for exactly one claimant, whoever asks."""
        try:
            with writing(self.engine, f"claiming schedule {schedule_id}") as conn:
                conn.execute(
                    insert(schedule_claims).values(
                        schedule_id=schedule_id,
                        due_at=due_at.astimezone(UTC),
                        claimed_at=datetime.now(UTC),
                        claimed_by=by,
                    )
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    def settle_claim(
        self, schedule_id: str, due_at: datetime, *, run_ids: list[str], error: str | None
    ) -> None:
        with writing(self.engine, f"recording the runs of schedule {schedule_id}") as conn:
            conn.execute(
                update(schedule_claims)
                .where(
                    schedule_claims.c.schedule_id == schedule_id,
                    schedule_claims.c.due_at == due_at.astimezone(UTC),
                )
                .values(run_ids_json=json.dumps(run_ids), error=error)
            )

    def claims(self, schedule_id: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """The latest claims of a schedule, newest first: due time, runs started, error."""
        with reading(self.engine, f"reading the claims of schedule {schedule_id}") as conn:
            rows = conn.execute(
                select(schedule_claims)
                .where(schedule_claims.c.schedule_id == schedule_id)
                .order_by(schedule_claims.c.due_at.desc())
                .limit(limit)
            ).all()
        return [
            {
                "due_at": utc(r.due_at),
                "claimed_by": r.claimed_by,
                "run_ids": json.loads(r.run_ids_json) if r.run_ids_json else [],
                "error": r.error,
            }
            for r in rows
        ]

    # --- webhook deliveries --------------------------------------------------------------------

    def first_delivery(self, delivery_id: str, *, event: str, outcome: str) -> bool:
        """Record a webhook delivery; False when its id was seen before (a replay)."""
        try:
            with writing(self.engine, "recording a webhook delivery") as conn:
                conn.execute(
                    insert(webhook_deliveries).values(
                        delivery_id=delivery_id,
                        received_at=datetime.now(UTC),
                        event=event,
                        outcome=outcome,
                    )
                )
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False
            raise
        return True

    def settle_delivery(self, delivery_id: str, outcome: str) -> None:
        with writing(self.engine, "recording a webhook delivery's outcome") as conn:
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.delivery_id == delivery_id)
                .values(outcome=outcome)
            )


def _check_github(github: str | None) -> None:
    if github is not None and not GITHUB_NAME.fullmatch(github):
        raise ConfigError(f"github {github!r} is not an owner/name repository name.")


def _check_index(index_url: str | None) -> None:
    if index_url is not None and not re.fullmatch(r"https?://[^\s]+", index_url):
        raise ConfigError(
            f"index_url {index_url!r} is not an http(s) URL of a package index (simple API)."
        )


def _repo(row: Row[Any]) -> RepoRecord:
    return RepoRecord(
        name=row.name,
        path=row.path,
        github=row.github,
        index_url=row.index_url,
        created_at=utc(row.created_at),
        created_by=row.created_by,
    )


def _schedule(row: Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        id=row.id,
        repo=row.repo,
        blueprint=row.blueprint,
        cron=row.cron,
        request=json.loads(row.request_json),
        enabled=bool(row.enabled),
        created_at=utc(row.created_at),
        created_by=row.created_by,
    )
