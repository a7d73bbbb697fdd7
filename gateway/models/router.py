from __future__ import annotations

from fastapi import APIRouter

from gateway.deps import PrincipalDep, ServicesDep
from gateway.error_responses import ERROR_RESPONSES
from gateway.models.protocol import ModelList, ModelObject

router = APIRouter(tags=["openai"])


@router.get("/v1/models", response_model=ModelList, responses=ERROR_RESPONSES)
async def list_models(principal: PrincipalDep, services: ServicesDep) -> ModelList:
    max_len = services.engine.max_model_len
    cards = services.router.models_for(principal)
    return ModelList(
        data=[
            ModelObject(id=c.id, created=c.created, root=c.root, parent=c.parent, max_model_len=max_len) for c in cards
        ]
    )
