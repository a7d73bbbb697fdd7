"""OpenAI's fine-tuning API (``/v1/fine_tuning/jobs``) and the admin's ``tune`` endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from gateway.deps import AdapterNamePath, AdminDep, PrincipalDep, ServicesDep
from gateway.error_responses import ADMIN_ERROR_RESPONSES, ErrorResponse
from gateway.exceptions import InvalidRequest
from gateway.fine_tuning.protocol import (
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobCreate,
    FineTuningJobEventList,
    FineTuningJobList,
    TuneRequest,
)
from gateway.fine_tuning.service import FineTuningService
from tuner.jobs.models import JOB_ID_PATTERN

RESPONSES: dict[int | str, dict] = {
    **ADMIN_ERROR_RESPONSES,
    403: {"model": ErrorResponse, "description": "The key lacks the fine_tune scope"},
    409: {"model": ErrorResponse, "description": "The job's state forbids it"},
}
router = APIRouter(prefix="/v1/fine_tuning/jobs", tags=["fine-tuning"], responses=RESPONSES)
admin_router = APIRouter(prefix="/admin/adapters", tags=["adapters"], responses=ADMIN_ERROR_RESPONSES)

JobIdPath = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="Fine-tuning job id")]
After = Annotated[str | None, Query(max_length=64, description="The last id of the previous page")]
MAX_METADATA_FILTERS = 16


async def get_fine_tuning(services: ServicesDep) -> FineTuningService:
    return services.fine_tuning


FineTuningDep = Annotated[FineTuningService, Depends(get_fine_tuning)]


def _metadata_filter(request: Request) -> dict[str, str] | None:
    """OpenAI's ``metadata[key]=value`` query parameters."""
    pairs = {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.multi_items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    if len(pairs) > MAX_METADATA_FILTERS:
        raise InvalidRequest(f"At most {MAX_METADATA_FILTERS} metadata filters.", param="metadata")
    return pairs or None


@router.post("", response_model=FineTuningJob)
async def create_job(body: FineTuningJobCreate, principal: PrincipalDep, service: FineTuningDep) -> FineTuningJob:
    """Queue a job that trains a new version of an adapter on an uploaded file. The candidate
    serves only if it passes the evaluation gate (see the job's ``outcome`` and ``gate``)."""
    return await service.create(body, principal)


@router.get("", response_model=FineTuningJobList)
async def list_jobs(
    request: Request,
    principal: PrincipalDep,
    service: FineTuningDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> FineTuningJobList:
    return await service.list(principal, after=after, limit=limit, metadata=_metadata_filter(request))


@router.get("/{fine_tuning_job_id}", response_model=FineTuningJob)
async def retrieve_job(fine_tuning_job_id: JobIdPath, principal: PrincipalDep, service: FineTuningDep) -> FineTuningJob:
    return await service.retrieve(principal, fine_tuning_job_id)


@router.post("/{fine_tuning_job_id}/cancel", response_model=FineTuningJob)
async def cancel_job(fine_tuning_job_id: JobIdPath, principal: PrincipalDep, service: FineTuningDep) -> FineTuningJob:
    """A queued job ends at once; a running one stops at its next training step."""
    return await service.cancel(principal, fine_tuning_job_id)


@router.get("/{fine_tuning_job_id}/events", response_model=FineTuningJobEventList)
async def list_events(
    fine_tuning_job_id: JobIdPath,
    principal: PrincipalDep,
    service: FineTuningDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> FineTuningJobEventList:
    """The job's progress, newest first."""
    return await service.events(principal, fine_tuning_job_id, after=after, limit=limit)


@router.get("/{fine_tuning_job_id}/checkpoints", response_model=FineTuningJobCheckpointList)
async def list_checkpoints(
    fine_tuning_job_id: JobIdPath,
    principal: PrincipalDep,
    service: FineTuningDep,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> FineTuningJobCheckpointList:
    return await service.checkpoints(principal, fine_tuning_job_id, after=after, limit=limit)


@admin_router.post("/{name}/tune", response_model=FineTuningJob, status_code=201)
async def tune_adapter(
    name: AdapterNamePath, service: FineTuningDep, _admin: AdminDep, body: TuneRequest | None = None
) -> FineTuningJob:
    """Curate the adapter's logged traffic and train a candidate now; follow the job with
    ``/v1/fine_tuning/jobs/{id}`` and its events."""
    return await service.tune(name, body or TuneRequest())
