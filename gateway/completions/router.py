from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from gateway.completions.protocol import CompletionRequest, CompletionResponse
from gateway.completions.service import CompletionService
from gateway.deps import PrincipalDep, RequestIdDep, ServicesDep
from gateway.error_responses import GENERATION_ERROR_RESPONSES
from gateway.generation.http import GenerationStreamResponse, client_disconnected, to_response

router = APIRouter(tags=["openai"])


async def get_completion_service(services: ServicesDep) -> CompletionService:
    return services.completions


@router.post(
    "/v1/completions",
    response_model=CompletionResponse,
    responses={**GENERATION_ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
)
async def create_completion(
    body: CompletionRequest,
    principal: PrincipalDep,
    service: Annotated[CompletionService, Depends(get_completion_service)],
    request_id: RequestIdDep,
    request: Request,
) -> JSONResponse | GenerationStreamResponse:
    # A non-stream request whose client leaves is aborted in the engine (a stream notices on its own).
    disconnected = client_disconnected(request)
    return to_response(
        await service.create(body, principal=principal, request_id=request_id, disconnected=disconnected)
    )
