"""Run steps: list and retrieve."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Query
from fastapi.responses import Response
from openai.types.beta.threads.runs import RunStep as WireRunStep
from sqlmodel import col

from api.deps import Project, Session
from api.pagination import Listing, page
from api.params import Checked
from api.responses import wire
from api.store import owned
from core.models import Run, RunStep

router = APIRouter(
    prefix="/threads/{thread_id}/runs/{run_id}/steps", tags=["run steps"], dependencies=[Checked]
)

Include = Query(None, alias="include[]")
RESULT_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def shaped(include: list[str] | None) -> Callable[[WireRunStep], WireRunStep]:
    """File search results carry their text only when `include[]` asks for it, as OpenAI's do."""
    if include and RESULT_CONTENT in include:
        return lambda step: step

    def without_content(step: WireRunStep) -> WireRunStep:
        for call in getattr(step.step_details, "tool_calls", None) or []:
            if call.type == "file_search":
                for result in call.file_search.results or []:
                    result.content = None
        return step

    return without_content


@router.get("")
async def list_run_steps(
    thread_id: str,
    run_id: str,
    params: Listing,
    project: Project,
    session: Session,
    include: list[str] | None = Include,
) -> Response:
    """List a run's steps."""
    await owned(session, Run, run_id, project, thread_id=thread_id)
    return await page(session, RunStep, params, col(RunStep.run_id) == run_id, shape=shaped(include))


@router.get("/{step_id}")
async def retrieve_run_step(
    thread_id: str,
    run_id: str,
    step_id: str,
    project: Project,
    session: Session,
    include: list[str] | None = Include,
) -> Response:
    """Retrieve a run step."""
    step = await owned(session, RunStep, step_id, project, run_id=run_id, thread_id=thread_id)
    return wire(shaped(include)(step.to_openai()))
