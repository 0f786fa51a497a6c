"""Repositories and schedules: what the server may change, and when it starts runs by itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from shipyard.web.api.deps import registry, scheduler
from shipyard.web.api.schemas import (
    RepoIn,
    RepoOut,
    RepoPatch,
    ScheduleIn,
    ScheduleOut,
    SchedulePatch,
)
from shipyard.web.auth import Identity, Role, require
from shipyard.web.registry import Registry, ScheduleRecord
from shipyard.web.scheduler import Scheduler

router = APIRouter()
RegistryDep = Annotated[Registry, Depends(registry)]
SchedulerDep = Annotated[Scheduler, Depends(scheduler)]
Admin = Annotated[Identity, Depends(require(Role.ADMIN))]


@router.get("/repos", tags=["repos"], summary="Registered repositories")
def list_repos(
    reg: RegistryDep, _who: Annotated[Identity, Depends(require(Role.VIEWER))]
) -> list[RepoOut]:
    return [RepoOut.of(r) for r in reg.repos()]


@router.post("/repos", tags=["repos"], status_code=201, summary="Register a repository (admin)")
def add_repo(body: RepoIn, reg: RegistryDep, who: Admin) -> RepoOut:
    record = reg.add_repo(
        name=body.name,
        path=Path(body.path),
        by=who.name,
        github=body.github,
        index_url=body.index_url,
    )
    return RepoOut.of(record)


@router.get("/repos/{name}", tags=["repos"], summary="One registered repository")
def get_repo(
    name: str, reg: RegistryDep, _who: Annotated[Identity, Depends(require(Role.VIEWER))]
) -> RepoOut:
    return RepoOut.of(reg.repo(name))


@router.patch("/repos/{name}", tags=["repos"], summary="Change a repository's settings (admin)")
def update_repo(name: str, body: RepoPatch, reg: RegistryDep, _who: Admin) -> RepoOut:
    return RepoOut.of(reg.update_repo(name, github=body.github, index_url=body.index_url))


@router.delete(
    "/repos/{name}", tags=["repos"], status_code=204, summary="Unregister a repository (admin)"
)
def remove_repo(name: str, reg: RegistryDep, _who: Admin) -> Response:
    reg.remove_repo(name)
    return Response(status_code=204)


def _out(sched: Scheduler, reg: Registry, record: ScheduleRecord) -> ScheduleOut:
    return ScheduleOut.of(record, sched.next_run(record), reg.claims(record.id, limit=5))


@router.get("/schedules", tags=["schedules"], summary="Schedules and when each is next due")
def list_schedules(
    reg: RegistryDep,
    sched: SchedulerDep,
    _who: Annotated[Identity, Depends(require(Role.VIEWER))],
) -> list[ScheduleOut]:
    return [_out(sched, reg, s) for s in reg.schedules()]


@router.post("/schedules", tags=["schedules"], status_code=201, summary="Add a schedule (admin)")
def add_schedule(
    body: ScheduleIn, reg: RegistryDep, sched: SchedulerDep, who: Admin
) -> ScheduleOut:
    request = body.task
    record = reg.add_schedule(
        repo=request.repo,
        blueprint=request.blueprint,
        cron=body.cron,
        request=request.model_dump(mode="json"),
        by=who.name,
    )
    return _out(sched, reg, record)


@router.get("/schedules/{schedule_id}", tags=["schedules"], summary="One schedule")
def get_schedule(
    schedule_id: str,
    reg: RegistryDep,
    sched: SchedulerDep,
    _who: Annotated[Identity, Depends(require(Role.VIEWER))],
) -> ScheduleOut:
    return _out(sched, reg, reg.schedule(schedule_id))


@router.patch("/schedules/{schedule_id}", tags=["schedules"], summary="Change a schedule (admin)")
def update_schedule(
    schedule_id: str, body: SchedulePatch, reg: RegistryDep, sched: SchedulerDep, _who: Admin
) -> ScheduleOut:
    record = reg.update_schedule(schedule_id, cron=body.cron, enabled=body.enabled)
    return _out(sched, reg, record)


@router.delete(
    "/schedules/{schedule_id}",
    tags=["schedules"],
    status_code=204,
    summary="Remove a schedule (admin)",
)
def remove_schedule(schedule_id: str, reg: RegistryDep, _who: Admin) -> Response:
    reg.remove_schedule(schedule_id)
    return Response(status_code=204)
