"""/openapi.json is generated from the route table: every JSON route is in it, nothing else is,
every reference resolves, and the document is valid OpenAPI 3.0."""
from __future__ import annotations

import json
import re
from typing import Annotated

from flask import Flask
from openapi_spec_validator import validate
from pydantic import BaseModel, Field

from app.api.openapi import Answer, build_spec, document, is_undocumented, openapi_path
from app.recommender.strategies import REGISTRY

JSON_BLUEPRINTS = ("api", "party_api")
# The only routes of the JSON blueprints that answer something other than JSON.
SWAGGER_UI = {"/doc", "/doc/", "/doc/assets/<name>"}


def _routes(app: Flask) -> tuple[set[tuple[str, str]], set[str]]:
    """(path, method) of every JSON route of the API's blueprints, and the other routes."""
    json_routes, others = set(), set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in JSON_BLUEPRINTS:
            continue
        if is_undocumented(app.view_functions[rule.endpoint]):
            others.add(rule.rule)
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            json_routes.add((openapi_path(rule.rule), method.lower()))
    return json_routes, others


def test_every_json_route_is_in_the_spec_and_every_operation_has_a_route(api_app, api_client):
    spec = api_client.get("/openapi.json").get_json()
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    json_routes, others = _routes(api_app)
    assert others == SWAGGER_UI
    assert json_routes - documented == set(), "routes missing from /openapi.json"
    assert documented - json_routes == set(), "documented operations without a route"
    assert {"/parties/{party_id}/guests/{guest_id}", "/predict/advanced"} <= set(spec["paths"])


def test_path_parameters_are_the_routes_with_their_types(api_client):
    spec = api_client.get("/openapi.json").get_json()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = {p["name"]: p["schema"] for p in op.get("parameters", [])
                      if p["in"] == "path"}
            assert set(params) == set(re.findall(r"{(\w+)}", path)), (path, method)
    leave = spec["paths"]["/parties/{party_id}/guests/{guest_id}"]["delete"]["parameters"]
    assert [p["name"] for p in leave] == ["party_id", "guest_id"]
    assert leave[1]["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
    assert leave[0]["schema"] == {"type": "string", "maxLength": 32}


def test_the_document_is_valid_openapi_and_every_reference_resolves(api_client):
    spec = api_client.get("/openapi.json").get_json()
    validate(spec)
    text = json.dumps(spec)
    for name in re.findall(r'"#/components/schemas/([^"]+)"', text):
        assert name in spec["components"]["schemas"], name
    schemes = spec["components"]["securitySchemes"]
    for item in spec["paths"].values():
        for op in item.values():
            for requirement in op.get("security", []):
                assert set(requirement) <= set(schemes), requirement
    assert {"apiKey", "partyToken"} <= set(schemes)
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert "anyOf" not in text and "const" not in text and "$defs" not in text


def test_the_docs_keep_examples_errors_and_the_strategy_table(api_client):
    spec = api_client.get("/openapi.json").get_json()
    predict = spec["paths"]["/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["example"]["user_id"] == 123
    assert predict["security"] == [{"apiKey": []}, {}]
    assert "unknown_users" in predict["responses"]["404"]["description"]
    strategy = spec["components"]["schemas"]["PredictRequest"]["properties"]["strategy"]
    assert strategy["enum"] == [*REGISTRY, None]
    queue = spec["paths"]["/parties/{party_id}/queue"]["get"]
    assert queue["security"] == [{"partyToken": []}]
    assert set(queue["responses"]["200"]["headers"]) == {"ETag", "X-Party-Guests-Control"}
    join = spec["paths"]["/parties/{party_id}/guests"]["post"]["requestBody"]
    join_schema = spec["components"]["schemas"][
        join["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert [way["title"] for way in join_schema["oneOf"]] == ["JoinAsUser", "JoinAsListener"]


class Thing(BaseModel):
    name: str = Field(max_length=5)
    size: int | None = None


def test_the_generator_reads_routes_annotations_and_declarations():
    app = Flask(__name__)

    @app.route("/things/<int:n>/<slug>", methods=["GET", "PUT"])
    @document(summary="A thing", tag="t", body=Thing, answers={200: Answer("ok", list[Thing])})
    def thing(n, slug: Annotated[str, Field(max_length=8)]):
        return ""

    @app.get("/plain")
    def plain():
        return ""

    spec = build_spec(app, {"title": "t", "version": "1"})
    validate(spec)
    assert list(spec["paths"]) == ["/things/{n}/{slug}"]
    item = spec["paths"]["/things/{n}/{slug}"]
    assert set(item) == {"get", "put"}
    assert {op["operationId"] for op in item.values()} == {"thing_get", "thing_put"}
    params = item["get"]["parameters"]
    assert params[0]["schema"] == {"type": "integer"}  # from the converter
    assert params[1]["schema"] == {"type": "string", "maxLength": 8}  # from the annotation
    assert item["put"]["requestBody"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/Thing"}
    size = spec["components"]["schemas"]["Thing"]["properties"]["size"]
    assert size["nullable"] is True and size["type"] == "integer"


def test_parse_body_validates_against_the_declared_body(api_client):
    """The views validate with the model they document, so the two cannot disagree."""
    response = api_client.post("/parties", json={"host_user_id": "123"})
    assert response.status_code == 422
    assert response.get_json()["details"][0]["field"] == "host_user_id"
    response = api_client.post("/parties/abc/guests",
                               json={"join_code": "x", "user_id": 1, "genres": ["rock"]})
    assert response.status_code == 422 and "either" in response.get_data(as_text=True)


def test_the_two_documented_ways_to_join_accept_what_the_server_accepts():
    from pydantic import ValidationError

    from app.party.schemas import JoinAsListener, JoinAsUser, JoinParty

    def accepts(model, body) -> bool:
        try:
            model.model_validate(body, strict=True)
            return True
        except ValidationError:
            return False

    code = {"join_code": "x"}
    for extra in [{}, {"user_id": 5}, {"genres": ["rock"]}, {"user_id": 5, "genres": ["rock"]},
                  {"user_id": None, "genres": ["rock"]}, {"user_id": 5, "genres": None},
                  {"user_id": None, "genres": None}, {"user_id": 5, "name": "Ala"},
                  {"user_id": 5, "name": 3}, {"genres": ["rock"], "name": None},
                  {"user_id": 5, "genres": "rock"}, {"user_id": 5, "genres": []}]:
        body = {**code, **extra}
        ways = accepts(JoinAsUser, body) + accepts(JoinAsListener, body)
        assert ways <= 1 and bool(ways) == accepts(JoinParty, body), body
