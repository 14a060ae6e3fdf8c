"""OpenAPI links: how one answer feeds the next request (an app's id, a build's number).

A client generated from the schema, or a stateful fuzzer, follows them from creating or
listing apps to every operation on one app, and from a list of builds or releases to each.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

APPS = "/api/v1/applications"
APP = APPS + "/{app_id}"
Schema = dict[str, Any]


def install(app: FastAPI) -> None:
    """The app's schema, built once, with the links added."""
    build = app.openapi

    def schema_with_links() -> Schema:
        if app.openapi_schema is None:
            add_links(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = schema_with_links  # type: ignore[method-assign]


def add_links(schema: Schema) -> None:
    paths: dict[str, dict[str, Schema]] = schema["paths"]
    on_an_app = _operations(paths, lambda path: path.startswith(APP))
    _link(paths[APPS]["post"], "201", on_an_app, {"app_id": "$response.body#/id"})
    _link(paths[APPS]["get"], "200", on_an_app, {"app_id": "$response.body#/items/0/id"})
    for kind in ("builds", "releases"):
        listing = paths.get(f"{APP}/{kind}", {}).get("get")
        if listing is None:
            continue
        each = _operations(paths, lambda path, k=kind: path.startswith(f"{APP}/{k}/{{number}}"))
        fields = {"app_id": "$request.path.app_id", "number": "$response.body#/0/number"}
        _link(listing, "200", each, fields)


def _operations(paths: dict[str, dict[str, Schema]], wanted: Any) -> list[str]:
    return [
        operation["operationId"]
        for path, operations in paths.items()
        if wanted(path)
        for operation in operations.values()
    ]


def _link(source: Schema, status: str, targets: list[str], parameters: dict[str, str]) -> None:
    links = source["responses"][status].setdefault("links", {})
    for target in targets:
        links[target] = {"operationId": target, "parameters": parameters}
