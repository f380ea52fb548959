"""Runs of the caller's project across all its threads, and its threads: GET /v1/assistd/runs and
GET /v1/assistd/threads, endpoints beyond OpenAI's API (which lists runs per thread only, and
threads not at all) for the playground's runs view and thread list, and for operators.

Under /v1 it has what every route has: the Gate's key check and rate limits, the project of the
key, parameter checks, errors in OpenAI's envelope. The `assistd` segment keeps it out of OpenAI's
namespace: OpenAI names its resources after what they are (`runs`, `threads`, even a `playground`
would be plausible), never after a third party's server, so no future OpenAI path can be taken
for this one, and an SDK pointed at Assistd reaches it as `client.get("/assistd/runs", ...)`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from openai.types.beta.threads.run_status import RunStatus
from pydantic import Field
from sqlmodel import col

from api.deps import Project, Session
from api.pagination import Listing, ListParams, page_rows
from api.params import Checked
from api.responses import listing
from core.models import Run, Thread
from core.run_filters import run_filters

router = APIRouter(prefix="/assistd", tags=["assistd"], dependencies=[Checked])


# Unix seconds; bounded so that no database is asked to compare a number it cannot hold
# (SQLite's integers stop at 2**63; created_at is a float, exact to 2**53)
Seconds = Annotated[int, Field(ge=0, le=2**53)]


class ProjectRunParams(ListParams):
    status: RunStatus | None = None
    assistant_id: str | None = None
    created_after: Seconds | None = None  # exclusive, as created_before
    created_before: Seconds | None = None


@router.get("/runs")
async def list_project_runs(
    params: Annotated[ProjectRunParams, Query()], project: Project, session: Session
) -> Response:
    """List the runs of all the project's threads (Assistd's own endpoint), newest first by default."""
    where = run_filters(
        project=project,
        status=params.status,
        assistant_id=params.assistant_id,
        created_after=params.created_after,
        created_before=params.created_before,
    )
    # a cursor may name a run that has left the filter since (a status moves on): any of the project's
    rows, has_more = await page_rows(session, Run, params, *where, cursors=run_filters(project=project))
    return listing([row.to_openai() for row in rows], has_more)


@router.get("/threads")
async def list_project_threads(params: Listing, project: Project, session: Session) -> Response:
    """List the project's threads (Assistd's own endpoint), newest first by default."""
    rows, has_more = await page_rows(session, Thread, params, col(Thread.project) == project)
    return listing([row.to_openai() for row in rows], has_more)
