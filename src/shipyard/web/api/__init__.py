"""The REST API under ``/api``: every route requires a role (see ``shipyard.web.auth``)."""

from fastapi import APIRouter

from shipyard.web.api import admin, reviews, runs, summary, tasks
from shipyard.web.api.schemas import ERRORS

router = APIRouter(responses=ERRORS)
for part in (tasks, runs, reviews, admin, summary):
    router.include_router(part.router)

__all__ = ["router"]
