"""The server's OpenAPI schema states every answer a route can give, errors included.

FastAPI documents only 200 and its own 422 body. Sumi's routes also answer with A1111's error body
(`errors.py`) for a bad Host (400), a missing login (401), a bad value (400), a missing resource (404),
a body over the limit (413), a schema violation (422), an out-of-memory (507) and an unexpected error
(500), and a schema-driven client (or schemathesis) should know that. This adds those responses, with
one `HTTPError` schema, to every operation, extension routes included, when the schema is built.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA_NAME = "HTTPError"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "description": "A1111's error body: the exception's name, what went wrong, and the same as text",
    "type": "object",
    "required": ["error", "detail", "body", "errors"],
    "properties": {
        "error": {"type": "string", "description": "the exception's class name"},
        "detail": {"description": "the message, or a list of schema errors for a 422"},
        "body": {"type": "string", "description": "always empty: the request body is never echoed"},
        "errors": {"type": "string", "description": "the message as text"},
    },
}
ERROR_STATUSES: dict[str, str] = {
    "400": "Bad value, or a Host the server does not answer to",
    "401": "Login required (--api-auth / --gradio-auth)",
    "404": "No such resource",
    "413": "Request body over --max-request-body-mb",
    "422": "The request does not fit the schema",
    "500": "Unexpected error (logged with its traceback)",
    "507": "Out of GPU memory",
}
# OpenAPI links: where a value one route returns is meant to go next. A schema-driven client (and
# schemathesis' stateful runs) follows them: (source, method) -> [(name, target, method, request body)].
Route = tuple[str, str]
LINKS: dict[Route, list[tuple[str, Route, dict[str, Any]]]] = {
    ("/sdapi/v1/samplers", "get"): [
        ("GenerateWithSampler", ("/sdapi/v1/txt2img", "post"), {"sampler_name": "$response.body#/0/name"}),
    ],
    ("/sdapi/v1/schedulers", "get"): [
        ("GenerateWithScheduler", ("/sdapi/v1/txt2img", "post"), {"scheduler": "$response.body#/0/label"}),
    ],
    ("/sdapi/v1/upscalers", "get"): [
        (
            "SelectImg2ImgUpscaler",
            ("/sdapi/v1/options", "post"),
            {"upscaler_for_img2img": "$response.body#/0/name"},
        ),
    ],
    ("/sdapi/v1/scripts", "get"): [
        ("GenerateWithScript", ("/sdapi/v1/txt2img", "post"), {"script_name": "$response.body#/txt2img/0"}),
    ],
    ("/sdapi/v1/sd-models", "get"): [
        (
            "SelectCheckpoint",
            ("/sdapi/v1/options", "post"),
            {"sd_model_checkpoint": "$response.body#/0/title"},
        ),
    ],
    ("/sdapi/v1/sd-vae", "get"): [
        ("SelectVae", ("/sdapi/v1/options", "post"), {"sd_vae": "$response.body#/0/model_name"}),
    ],
    ("/sdapi/v1/txt2img", "post"): [
        ("ReadParameters", ("/sdapi/v1/png-info", "post"), {"image": "$response.body#/images/0"}),
    ],
}
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def document_errors(fastapi_app: FastAPI) -> None:
    """Make `fastapi_app.openapi()` add the error responses to every operation (built once, cached)."""

    def openapi() -> dict[str, Any]:
        if fastapi_app.openapi_schema is None:
            schema = get_openapi(
                title=fastapi_app.title,
                version=fastapi_app.version,
                openapi_version=fastapi_app.openapi_version,
                description=fastapi_app.description,
                routes=fastapi_app.routes,
            )
            fastapi_app.openapi_schema = with_links(with_error_responses(schema))
        return fastapi_app.openapi_schema

    fastapi_app.openapi = openapi  # type: ignore[method-assign]


def with_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with `HTTPError` answers for every error status on every operation."""
    schema.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_STATUSES.items():
                responses[status] = {
                    "description": description,
                    "content": {"application/json": {"schema": reference}},
                }
    return schema


def with_links(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the `LINKS` whose routes are both mounted, on the source's 200 answer."""
    paths = schema.get("paths", {})
    for (path, method), links in LINKS.items():
        success = paths.get(path, {}).get(method, {}).get("responses", {}).get("200")
        if success is None:
            continue
        for name, (target_path, target_method), body in links:
            if target_method in paths.get(target_path, {}):
                pointer = target_path.replace("~", "~0").replace("/", "~1")
                success.setdefault("links", {})[name] = {
                    "operationRef": f"#/paths/{pointer}/{target_method}",
                    "requestBody": body,
                }
    return schema


__all__ = ["ERROR_SCHEMA", "ERROR_STATUSES", "LINKS", "document_errors", "with_error_responses", "with_links"]
