#!/usr/bin/env python
"""Check that the client's models still match the server's OpenAPI document.

    python client/scripts/check_openapi.py                        # build it from the server code
    python client/scripts/check_openapi.py http://127.0.0.1:8000  # fetch /openapi.json
    python client/scripts/check_openapi.py openapi.json           # a saved document

For each endpoint the client reads (and the submit body it sends), the field names,
types and required-ness of the server's schema are compared with the client model,
following nested models on both sides. Exit 0 when they match, 1 with a diff.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from kedro_gateway_client.models import (
    Health,
    Job,
    JobCreate,
    JobEventList,
    JobList,
    LogChunk,
    Pipeline,
    PipelineList,
    WorkerList,
)

#: The one place that names the server's code: "module:factory" building its FastAPI app.
SERVER_APP_FACTORY = "app.application:create_app"
REPO_ROOT = Path(__file__).resolve().parents[2]

#: (method, path, "request" or "response") -> the client model that must match.
CHECKED: list[tuple[str, str, str, type[BaseModel]]] = [
    ("post", "/api/v1/jobs", "request", JobCreate),
    ("post", "/api/v1/jobs", "response", Job),
    ("get", "/api/v1/jobs/{}", "response", Job),
    ("get", "/api/v1/jobs", "response", JobList),
    ("get", "/api/v1/jobs/{}/logs", "response", LogChunk),
    ("get", "/api/v1/jobs/{}/events", "response", JobEventList),
    ("post", "/api/v1/jobs/{}/cancel", "response", Job),
    ("get", "/api/v1/pipelines", "response", PipelineList),
    ("get", "/api/v1/pipelines/{}", "response", Pipeline),
    ("get", "/api/v1/workers", "response", WorkerList),
    ("get", "/api/v1/health", "response", Health),
]


def load_server_openapi(source: str | None = None) -> dict[str, Any]:
    """The server's OpenAPI document: fetched from a URL, read from a file, or built from
    the server's code (`SERVER_APP_FACTORY`, imported from the repository root)."""
    if source and source.startswith(("http://", "https://")):
        response = httpx.get(source.rstrip("/") + "/openapi.json", timeout=30)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document
    if source:
        loaded: dict[str, Any] = json.loads(Path(source).read_text(encoding="utf-8"))
        return loaded
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    module_name, _, factory = SERVER_APP_FACTORY.partition(":")
    app = getattr(importlib.import_module(module_name), factory)()
    built: dict[str, Any] = app.openapi()
    return built


# --- schema normalisation -----------------------------------------------------------------


class _Side:
    """One side's schemas: resolves refs and renders types as comparable strings."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.resolve(schema["allOf"][0])
        return schema

    def is_model(self, schema: dict[str, Any]) -> bool:
        resolved = self.resolve(schema)
        return resolved.get("type") == "object" and "properties" in resolved

    def render(self, schema: dict[str, Any]) -> str:
        schema = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return " | ".join(sorted({self.render(s) for s in schema[key]}))
        if "enum" in schema:
            return "enum[" + ",".join(sorted(map(str, schema["enum"]))) + "]"
        if "const" in schema:
            return f"const[{schema['const']}]"
        kind = schema.get("type")
        if isinstance(kind, list):
            return " | ".join(sorted(self.render({**schema, "type": k}) for k in kind))
        if kind == "array":
            return f"list[{self.render(schema.get('items', {}))}]"
        if kind == "object":
            if "properties" in schema:
                return "object"
            extra = schema.get("additionalProperties", True)
            patterns = list(schema.get("patternProperties", {}).values())
            if patterns and len(patterns) == 1:
                extra = patterns[0]
            return f"dict[{self.render(extra) if isinstance(extra, dict) else 'any'}]"
        if kind == "string" and schema.get("format") in ("date-time", "date"):
            return str(schema["format"])
        if kind == "integer":
            return "integer"
        return str(kind) if kind else "any"


def compare_models(
    server: dict[str, Any], s_side: _Side, client: dict[str, Any], c_side: _Side, where: str
) -> list[str]:
    """Differences between two object schemas, recursing into nested models."""
    server, client = s_side.resolve(server), c_side.resolve(client)
    s_props, c_props = server.get("properties", {}), client.get("properties", {})
    diffs = [
        f"{where}.{name}: on the server, missing in the client"
        for name in sorted(set(s_props) - set(c_props))
    ]
    diffs += [
        f"{where}.{name}: in the client, unknown to the server"
        for name in sorted(set(c_props) - set(s_props))
    ]
    s_req, c_req = set(server.get("required", [])), set(client.get("required", []))
    for name in sorted(set(s_props) & set(c_props)):
        s_type, c_type = s_side.render(s_props[name]), c_side.render(c_props[name])
        if s_type != c_type:
            diffs.append(f"{where}.{name}: server {s_type}, client {c_type}")
        if (name in s_req) != (name in c_req):
            state = "required" if name in s_req else "optional"
            diffs.append(f"{where}.{name}: {state} on the server, not in the client")
        diffs += _nested(s_props[name], s_side, c_props[name], c_side, f"{where}.{name}")
    return diffs


def _nested(
    s: dict[str, Any], s_side: _Side, c: dict[str, Any], c_side: _Side, where: str
) -> list[str]:
    s, c = s_side.resolve(s), c_side.resolve(c)
    if s_side.is_model(s) and c_side.is_model(c):
        return compare_models(s, s_side, c, c_side, where)
    if s.get("type") == "array" and c.get("type") == "array":
        return _nested(s.get("items", {}), s_side, c.get("items", {}), c_side, f"{where}[]")
    if isinstance(s.get("additionalProperties"), dict) and isinstance(
        c.get("additionalProperties"), dict
    ):
        return _nested(
            s["additionalProperties"], s_side, c["additionalProperties"], c_side, f"{where}{{}}"
        )
    for key in ("anyOf", "oneOf"):
        if key in s and key in c:
            s_models = [x for x in s[key] if s_side.is_model(x) or "items" in s_side.resolve(x)]
            c_models = [x for x in c[key] if c_side.is_model(x) or "items" in c_side.resolve(x)]
            if len(s_models) == 1 and len(c_models) == 1:
                return _nested(s_models[0], s_side, c_models[0], c_side, where)
    return []


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    wanted = re.compile("^" + re.escape(path).replace(r"\{\}", r"\{[^/}]+\}") + "$")
    for candidate, operations in document.get("paths", {}).items():
        if wanted.match(candidate) and method in operations:
            found: dict[str, Any] = operations[method]
            return found
    return None


def _schema_of(operation: dict[str, Any], part: str) -> dict[str, Any] | None:
    if part == "request":
        content = operation.get("requestBody", {}).get("content", {})
    else:
        responses = operation.get("responses", {})
        ok: dict[str, Any] = next(
            (responses[c] for c in ("200", "201", "202") if c in responses), {}
        )
        content = ok.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return schema if schema else None


def check(document: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(differences, notes): the diff fails the check; notes are what could not be checked."""
    s_side = _Side(document.get("components", {}).get("schemas", {}))
    diffs: list[str] = []
    notes: list[str] = []
    for method, path, part, client_model in CHECKED:
        label = f"{method.upper()} {path} {part} ({client_model.__name__})"
        operation = _operation(document, method, path)
        if operation is None:
            diffs.append(f"{label}: the server has no such endpoint")
            continue
        server_schema = _schema_of(operation, part)
        if server_schema is None or not s_side.is_model(server_schema):
            notes.append(f"{label}: the server's OpenAPI gives no schema; not checked")
            continue
        mode: Literal["validation", "serialization"] = (
            "validation" if part == "request" else "serialization"
        )
        client_schema = client_model.model_json_schema(mode=mode)
        c_side = _Side(client_schema.get("$defs", {}))
        diffs += compare_models(server_schema, s_side, client_schema, c_side, client_model.__name__)
    return sorted(set(diffs)), notes


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    document = load_server_openapi(args[0] if args else None)
    diffs, notes = check(document)
    for line in notes:
        print(f"note: {line}")
    if diffs:
        print("the client's models differ from the server's OpenAPI document:")
        for line in diffs:
            print(f"  - {line}")
        return 1
    print(f"ok: {len(CHECKED)} request/response models match the server's OpenAPI document")
    return 0


if __name__ == "__main__":
    sys.exit(main())
