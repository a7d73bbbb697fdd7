from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import PrincipalDep, ServicesDep
from gateway.error_responses import ERROR_RESPONSES
from switchyard.traffic.models import FeedbackCreate, FeedbackPublic

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", response_model=FeedbackPublic, status_code=201, responses=ERROR_RESPONSES)
async def create_feedback(body: FeedbackCreate, principal: PrincipalDep, services: ServicesDep) -> FeedbackPublic:
    return await services.feedback.submit(body, principal=principal)
