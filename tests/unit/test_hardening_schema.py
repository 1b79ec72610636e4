"""schemathesis against the app's own OpenAPI document (ASGI, the contract double as the agent, API keys on):
no 5xx, every status code, content type and body as documented (a refused body is a documented 400, not 422).
The same run against the served document of the real stack is in tests/integration/test_hardening.py."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deployments.api_router import create_app
from deployments.auth import KeyRing, parse_keys
from deployments.config import ApiSettings
from deployments.serving_chat import OpenAIServingChat
from tests.unit.agent_fakes import ContractAgent

KEY = "sk-schema-0123456789abcdef"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
app = create_app(OpenAIServingChat(ApiSettings.load(admission={"per_key_rpm": 100000, "per_key_burst": 1000}),
                                   ContractAgent()), keys=KeyRing(parse_keys(f"ci:{KEY}")))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)


def test_the_document_has_no_422_and_declares_bearer_auth():
    doc = app.openapi()
    codes = {code for item in doc["paths"].values() for op in item.values() for code in op["responses"]}
    assert "422" not in codes and {"400", "401", "413", "429", "503"} <= codes
    assert doc["paths"]["/v1/chat/completions"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/health"]["get"]
