"""The committed openapi.yaml is the served contract."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.openapi import render_openapi

ROOT = Path(__file__).parents[2]
ROUTES = {
    ("post", "/v1/chat/completions"),
    ("post", "/v1/completions"),
    ("get", "/v1/models"),
    ("post", "/v1/feedback"),
    ("get", "/health"),
    ("get", "/ready"),
    ("post", "/admin/keys"),
    ("get", "/admin/keys"),
    ("delete", "/admin/keys/{key_id}"),
    ("get", "/admin/requests"),
    ("get", "/admin/requests/{request_id}"),
    ("get", "/admin/traffic"),
    ("get", "/metrics"),
    ("get", "/admin/adapters"),
    ("get", "/admin/adapters/{name}"),
    ("get", "/admin/adapters/{name}/events"),
    ("post", "/admin/adapters/{name}/versions"),
    ("post", "/admin/adapters/{name}/versions/upload"),
    ("post", "/admin/adapters/{name}/promote"),
    ("post", "/admin/adapters/{name}/rollback"),
    ("post", "/admin/adapters/{name}/canary"),
    ("post", "/admin/adapters/{name}/pin"),
    ("post", "/admin/adapters/{name}/versions/{version}/retire"),
    ("post", "/admin/adapters/{name}/versions/{version}/reject"),
    ("delete", "/admin/adapters/{name}/versions/{version}"),
    ("put", "/admin/adapters/{name}/task-checks"),
    ("post", "/admin/adapters/{name}/tune"),
    ("get", "/admin/adapters/{name}/tuning-policy"),
    ("put", "/admin/adapters/{name}/tuning-policy"),
    ("delete", "/admin/adapters/{name}/tuning-policy"),
    ("post", "/v1/files"),
    ("get", "/v1/files"),
    ("get", "/v1/files/{file_id}"),
    ("delete", "/v1/files/{file_id}"),
    ("get", "/v1/files/{file_id}/content"),
    ("post", "/v1/fine_tuning/jobs"),
    ("get", "/v1/fine_tuning/jobs"),
    ("get", "/v1/fine_tuning/jobs/{fine_tuning_job_id}"),
    ("post", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel"),
    ("get", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events"),
    ("get", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"),
    ("post", "/admin/drift/run"),
    ("get", "/admin/drift"),
    ("get", "/admin/drift/{result_id}"),
    ("get", "/admin/drift/{result_id}/report"),
    ("post", "/admin/drift/{result_id}/report-link"),
}
PUBLIC = {("get", "/health")}


def test_committed_contract_matches_the_app() -> None:
    committed = (ROOT / "openapi.yaml").read_text()
    assert committed == render_openapi(), "openapi.yaml is stale: run `switchyard openapi`"


def test_contract_covers_every_route_with_error_envelopes() -> None:
    spec = yaml.safe_load(render_openapi())
    served = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert served == ROUTES, "a route was added or removed: list it here (and test its access rules)"
    for method, path in served - PUBLIC:
        responses = spec["paths"][path][method]["responses"]
        error_statuses = [s for s in responses if s.startswith(("4", "5"))]
        assert error_statuses, (method, path)
        for status in error_statuses:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
