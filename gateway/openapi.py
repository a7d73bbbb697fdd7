"""The HTTP contract as committed in ``openapi.yaml``."""

from __future__ import annotations

import yaml

from gateway.app import create_app
from switchyard.config import Settings


def render_openapi() -> str:
    # Fixed settings: the contract must not depend on the environment it is rendered in.
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True, width=100)
