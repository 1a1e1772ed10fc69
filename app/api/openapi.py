"""OpenAPI from the route table: each JSON view carries one ``@document(...)`` declaration.

The paths, methods and path parameters come from ``app.url_map`` (the parameters' types from
the view's annotations), the bodies from the pydantic models the views validate with, so a
route, a model and its documentation cannot drift apart. The bundled Swagger UI (4.x) renders
OpenAPI 3.0 only, so pydantic's JSON Schema (2020-12) is converted once, in ``to_openapi30``.
"""
from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, TypeVar

from flask import Flask
from pydantic import TypeAdapter
from werkzeug.routing import Rule

F = TypeVar("F", bound=Callable[..., Any])
REF_TEMPLATE = "#/components/schemas/{model}"
# <name>, <converter:name> or <converter(arguments):name>
_ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_CONVERTER_TYPES = {"int": int, "float": float}


@dataclass(frozen=True)
class Header:
    """A header of an answer, or a request header the operation reads."""

    description: str
    enum: tuple[str, ...] = ()
    required: bool = True

    def schema(self) -> dict[str, Any]:
        return {"type": "string", **({"enum": list(self.enum)} if self.enum else {})}


@dataclass(frozen=True)
class Answer:
    """One documented status: what it means, its JSON body's type and its headers."""

    description: str
    body: Any = None  # anything pydantic describes: a model, list[Model], ...
    headers: Mapping[str, Header] = field(default_factory=dict)


@dataclass(frozen=True)
class SecurityScheme:
    name: str
    description: str
    scheme: str = "bearer"

    def spec(self) -> dict[str, str]:
        return {"type": "http", "scheme": self.scheme, "description": self.description}


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    description: str | None = None
    # The validated request body: a model, or a function of the app's config returning one.
    body: Any = None
    example: Any = None
    # Who may call: each entry one scheme, None for "no credentials needed".
    security: tuple[SecurityScheme | None, ...] = ()
    request_headers: Mapping[str, Header] = field(default_factory=dict)

    def body_model(self) -> Any:
        return self.body() if inspect.isfunction(self.body) else self.body


_UNDOCUMENTED = object()


def document(**declaration: Any) -> Callable[[F], F]:
    """Put a view in /openapi.json with the fields of ``Operation``; anywhere below the route
    decorator (wrappers made with functools.wraps, such as the rate limits, keep it)."""
    operation = Operation(**declaration)

    def mark(view: F) -> F:
        view.openapi = operation  # type: ignore[attr-defined]
        return view
    return mark


def undocumented(view: F) -> F:
    """A route of a JSON blueprint that is not JSON API (an HTML page, a static file)."""
    view.openapi = _UNDOCUMENTED  # type: ignore[attr-defined]
    return view


def _declared(view: Callable[..., Any]) -> Any:
    """The view's declaration, looked up through decorators such as the rate limits."""
    while view is not None:
        if hasattr(view, "openapi"):
            return view.openapi
        view = getattr(view, "__wrapped__", None)
    return None


def operation_of(view: Callable[..., Any]) -> Operation | None:
    found = _declared(view)
    return found if isinstance(found, Operation) else None


def is_undocumented(view: Callable[..., Any]) -> bool:
    return _declared(view) is _UNDOCUMENTED


def openapi_path(rule: str) -> str:
    """Werkzeug's ``/parties/<party_id>/guests/<int:guest_id>`` as ``/parties/{party_id}/...``."""
    return _ARGUMENT.sub(r"{\2}", rule)


def build_spec(app: Flask, info: Mapping[str, Any], extra_schemas: tuple[Any, ...] = ()
               ) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every declared route of ``app``, in registration order."""
    inputs: list[tuple[int, str, TypeAdapter]] = []

    def schema_of(kind: Any, mode: str) -> _Slot:
        inputs.append((len(inputs), mode, TypeAdapter(kind)))
        return _Slot(len(inputs) - 1)  # filled in below, once every type is known

    paths: dict[str, dict[str, Any]] = {}
    schemes: dict[str, dict[str, str]] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        op = operation_of(view)
        if op is None:
            continue
        out = _operation(rule, view, op, schema_of)
        schemes.update({s.name: s.spec() for s in op.security if s is not None})
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        for method in methods:
            paths.setdefault(openapi_path(rule.rule), {})[method.lower()] = out if len(
                methods) == 1 else {**out, "operationId": f"{out['operationId']}_{method.lower()}"}

    for kind in extra_schemas:
        schema_of(kind, "serialization")
    resolved, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
    schemas = [to_openapi30(resolved[key, mode]) for key, mode, _ in inputs]
    _fill(paths, schemas)
    return {
        "openapi": "3.0.3",
        "info": dict(info),
        "paths": paths,
        "components": {"schemas": to_openapi30(definitions.get("$defs", {})),
                       "securitySchemes": schemes},
    }


def _operation(rule: Rule, view: Callable[..., Any], op: Operation,
               schema_of: Callable[[Any, str], _Slot]) -> dict[str, Any]:
    hints = typing.get_type_hints(inspect.unwrap(view), include_extras=True)
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": schema_of(
            hints.get(name, _CONVERTER_TYPES.get(converter, str)), "validation")}
        for converter, name in _ARGUMENT.findall(rule.rule)
    ] + [{"name": name, "in": "header", "required": header.required,
          "description": header.description, "schema": header.schema()}
         for name, header in op.request_headers.items()]
    out: dict[str, Any] = {"summary": op.summary,
                           "operationId": rule.endpoint.rsplit(".", 1)[-1], "tags": [op.tag]}
    if op.description:
        out["description"] = op.description
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        content: dict[str, Any] = {"schema": schema_of(op.body_model(), "validation")}
        if op.example is not None:
            content["example"] = op.example
        out["requestBody"] = {"required": True, "content": {"application/json": content}}
    out["responses"] = {str(status): _answer(answer, schema_of)
                        for status, answer in op.answers.items()}
    if op.security:
        out["security"] = [{scheme.name: []} if scheme else {} for scheme in op.security]
    return out


def _answer(answer: Answer, schema_of: Callable[[Any, str], _Slot]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": answer.description}
    if answer.headers:
        out["headers"] = {name: {"description": header.description,
                                 "required": header.required, "schema": header.schema()}
                          for name, header in answer.headers.items()}
    if answer.body is not None:
        out["content"] = {"application/json": {"schema": schema_of(answer.body,
                                                                    "serialization")}}
    return out


@dataclass(frozen=True)
class _Slot:
    """Where a generated schema goes: pydantic generates them all at once, with shared $defs."""

    index: int


def _fill(node: Any, schemas: list[Any]) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, _Slot):
            node[key] = schemas[value.index]
        else:
            _fill(value, schemas)


def to_openapi30(schema: Any) -> Any:
    """pydantic's JSON Schema 2020-12 -> OpenAPI 3.0: ``anyOf [X, null]`` becomes nullable X,
    ``const`` a one-value enum, the ``null`` type a nullable enum of null.

    A nullable enum must also list null among its values: validators apply ``enum`` first.
    """
    if isinstance(schema, list):
        return [to_openapi30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" in rest[0]:
            out["allOf"] = rest  # siblings of $ref are ignored in 3.0; allOf keeps nullable
        elif len(rest) == 1:
            out.update(rest[0])
        else:
            out["anyOf"] = rest
        out["nullable"] = True
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]  # 3.0 checks enum before nullable
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if out.get("type") == "null":  # a field that may only be left out or null
        del out["type"]
        out.update(nullable=True, enum=[None])
    return {key: to_openapi30(value) for key, value in out.items()}
