from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from gateway.admin.tuning_policy_protocol import TuningPolicyRequest, TuningPolicyView
from gateway.admin.tuning_policy_service import TuningPolicyService
from gateway.deps import AdapterNamePath, AdminDep, ServicesDep
from gateway.error_responses import ADMIN_ERROR_RESPONSES

router = APIRouter(prefix="/admin/adapters", tags=["adapters"], responses=ADMIN_ERROR_RESPONSES)


async def get_tuning_policies(services: ServicesDep, _admin: AdminDep) -> TuningPolicyService:
    return services.tuning_policies


TuningPoliciesDep = Annotated[TuningPolicyService, Depends(get_tuning_policies)]


@router.get("/{name}/tuning-policy", response_model=TuningPolicyView)
async def get_tuning_policy(name: AdapterNamePath, policies: TuningPoliciesDep) -> TuningPolicyView:
    """The adapter's tuning policy; 404 ``not_found`` when it has none (it is tuned on demand,
    with the configured preset and the gate's defaults)."""
    return await policies.get(name)


@router.put("/{name}/tuning-policy", response_model=TuningPolicyView)
async def put_tuning_policy(
    name: AdapterNamePath, body: TuningPolicyRequest, policies: TuningPoliciesDep
) -> TuningPolicyView:
    """Create or replace the policy: hyperparameter and gate overrides, and the refresh schedule
    (``schedule_interval_s`` or a five-field UTC ``schedule_cron``), checked before it is stored."""
    return await policies.put(name, body)


@router.delete("/{name}/tuning-policy", status_code=204, response_class=Response)
async def delete_tuning_policy(name: AdapterNamePath, policies: TuningPoliciesDep) -> Response:
    """Remove the policy, and with it the adapter's refresh schedule."""
    await policies.delete(name)
    return Response(status_code=204)
