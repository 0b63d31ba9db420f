"""The agent API's OpenAPI 3.1 document (served at /openapi.json, checked by the tests)."""

from __future__ import annotations

from typing import Any

from ebpm import __version__
from ebpm.run.lines import LINE_MAX
from ebpm.serve.output import MAX_OUTPUT, MAX_SECONDS

__all__ = ["document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Malformed request (bad JSON, unknown field, bad reference)"),
    "401": _json(_ref("Error"), "Missing or wrong bearer token (TCP listeners)"),
    "404": _json(_ref("Error"), "No such program or package"),
    "413": _json(_ref("Error"), "Request body over the size limit"),
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
       "description": "Program id (or a unique prefix of at least 3 characters)"}


def _busy(what: str, option: str) -> dict[str, Any]:
    """The 503 of a capped answer (`ebpm.serve.slots`)."""
    return {"description": f"As many {what} as the agent runs at once (its {option}) are "
            "under way: try again after Retry-After seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": _ref("Error")}}}


def document() -> dict[str, Any]:
    """The OpenAPI document of every route `ebpm.serve.app` serves."""
    program = {
        "type": "object",
        "required": ["id", "ref", "digest", "status", "events", "lost"],
        "properties": {
            "id": {"type": "string"},
            "ref": {"type": "string"},
            "package": {"type": "string"},
            "version": {"type": "string"},
            "digest": {"type": "string", "description": "Manifest digest of the package"},
            "signer": {"type": "string", "description": "Key id(s) that signed it"},
            "status": {"type": "string", "enum": ["running", "exited", "failed", "stopped"]},
            "error": {"type": ["string", "null"]},
            "args": {"type": "array", "items": {"type": "string"}},
            "attached": {"type": "array", "items": {"type": "string"},
                         "description": "Attach points (program -> hook)"},
            "dropped": {"type": "array", "items": {"type": "string"}},
            "streams": {"type": "array", "items": {"type": "string"},
                        "description": "Where its events come from (event maps, bpf_printk)"},
            "results": {"type": "array", "items": {"type": "string"},
                        "description": "Its result maps (GET /v1/programs/{id}/maps)"},
            "iterators": {"type": "array", "items": {"type": "string"},
                          "description": "Its iterator programs, SEC(\"iter/...\") (GET "
                          "/v1/programs/{id}/output runs them)"},
            "events": {"type": "integer", "description": "Events delivered by the kernel"},
            "lost": {"type": "integer", "description": "Events lost in the kernel"},
            "readers": {"type": "integer"},
            "reader_lost": {"type": "integer", "description": "Events slow readers lost"},
            "load_seconds": {"type": "number"},
            "warm_start": {"type": "boolean",
                           "description": "Attached from the warm cache (loaded earlier)"},
            "uptime": {"type": "number"},
            "persist": {"type": "boolean"},
            "swaps": {"type": "integer"},
        },
    }
    start_props: dict[str, Any] = {
        "ref": {"type": "string", "description": "Registry reference NAME[:VERSION]"},
        "args": {"type": "array", "items": {"type": "string"},
                 "description": "The package's flags, as after `--` of `ebpm run`"},
        "allow_unsigned": {"type": "boolean", "default": False},
        "persist": {"type": "boolean", "default": False,
                    "description": "Pin links and maps so the program outlives the agent"},
    }
    start = {"type": "object", "required": ["ref"], "additionalProperties": False,
             "properties": start_props}
    swap = {"type": "object", "required": ["ref"], "additionalProperties": False,
            "properties": {k: v for k, v in start_props.items() if k != "persist"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ebpm agent", "version": __version__,
                 "description": "Start, list, stream, swap and stop eBPF programs."},
        "paths": {
            "/v1/programs": {
                "get": {"summary": "List programs", "operationId": "listPrograms",
                        "responses": {"200": _json({"type": "object", "properties": {
                            "programs": {"type": "array", "items": _ref("Program")}}},
                            "Every program"), "401": _ERRORS["401"]}},
                "post": {"summary": "Pull, load and attach a package",
                         "operationId": "startProgram",
                         "requestBody": {"required": True, "content": {
                             "application/json": {"schema": _ref("StartRequest")}}},
                         "responses": {"201": _json(_ref("Program"), "Attached"), **_ERRORS,
                                       "403": _json(_ref("Error"), "Refused by trust policy"),
                                       "422": _json(_ref("Error"),
                                                    "The kernel refused it (verifier log)")}},
            },
            "/v1/programs/{id}": {
                "parameters": [_ID],
                "get": {"summary": "One program", "operationId": "getProgram",
                        "responses": {"200": _json(_ref("Program"), "The program"),
                                      "404": _ERRORS["404"], "401": _ERRORS["401"]}},
                "put": {"summary": "Hot swap to another version (new attached before old "
                        "detached)", "operationId": "swapProgram",
                        "requestBody": {"required": True, "content": {
                            "application/json": {"schema": _ref("SwapRequest")}}},
                        "responses": {"200": _json(_ref("Program"), "Swapped"), **_ERRORS,
                                      "422": _json(_ref("Error"), "The new version was "
                                                   "refused; the old one keeps running")}},
                "delete": {"summary": "Detach and unload", "operationId": "stopProgram",
                           "responses": {"200": _json(_ref("Program"), "Stopped"),
                                         "404": _ERRORS["404"], "401": _ERRORS["401"]}},
            },
            "/v1/programs/{id}/events": {
                "parameters": [_ID],
                "get": {
                    "summary": "Stream decoded events (NDJSON, or SSE)",
                    "operationId": "streamEvents",
                    "parameters": [
                        {"name": "format", "in": "query",
                         "schema": {"type": "string", "enum": ["ndjson", "sse"]},
                         "description": "Default: sse when Accept asks for "
                         "text/event-stream, else ndjson"},
                        {"name": "follow", "in": "query", "schema": {"type": "boolean",
                                                                     "default": True}},
                        {"name": "tail", "in": "query", "schema": {"type": "string"},
                         "description": "Recent events to send first: a number or 'all'"},
                    ],
                    "responses": {"200": {
                        "description": "One event per line (NDJSON) or per `data:` (SSE). "
                        "Lines with `_ebpm` (NDJSON) or events `lost`/`end` (SSE) carry this "
                        "reader's loss count. A stream that ends with the program's run (it "
                        "was stopped, or its run ended by itself) says how in its end record: "
                        "`status` (`stopped`, `exited`, `failed`), `error` and `hint` of a "
                        "failed run, `exit_status` of a WebAssembly guest's.",
                        "content": {"application/x-ndjson": {"schema": {"type": "object"}},
                                    "text/event-stream": {"schema": {"type": "string"}}}},
                        "404": _ERRORS["404"], "401": _ERRORS["401"],
                        "503": _busy("event streams", "--max-streams")}},
            },
            "/v1/programs/{id}/output": {
                "parameters": [_ID],
                "get": {
                    "summary": "Run its iterator programs anew and stream what they write",
                    "description": "Each iterator program is run once, to its end, as `cat` "
                    "of its pinned file would (a new bpf_iter_create on its link), in order. "
                    "One record per line of its text, as `ebpm run --json` prints it; a line "
                    f"over {LINE_MAX} bytes, or the end without a newline, comes with "
                    "`partial` (the next record continues it). The last record (`_ebpm`: "
                    "`end`) gives the bytes each wrote and why the read stopped early, if it "
                    f"did: `limit` (the bytes asked for, at most {MAX_OUTPUT} in one read), "
                    f"`time` (one read runs at most {MAX_SECONDS:.0f} s), `error` (with "
                    "`error`: the kernel refused a read).",
                    "operationId": "readOutput",
                    "parameters": [
                        {"name": "limit", "in": "query",
                         "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OUTPUT,
                                    "default": MAX_OUTPUT},
                         "description": "Bytes to read at most (all its iterators together)"},
                    ],
                    "responses": {
                        "200": {"description": "NDJSON: OutputLine records, then OutputEnd",
                                "content": {"application/x-ndjson": {"schema": {"oneOf": [
                                    _ref("OutputLine"), _ref("OutputEnd")]}}}},
                        "400": _ERRORS["400"], "401": _ERRORS["401"],
                        "404": _json(_ref("Error"), "No such program, or it has no iterator "
                                     "program"),
                        "409": _json(_ref("Error"), "Its run is over (exited or failed)"),
                        "503": _busy("iterator reads", "--max-output-reads")}},
            },
            "/v1/programs/{id}/maps": {
                "parameters": [_ID],
                "get": {"summary": "Result maps now (histograms as buckets)",
                        "operationId": "readMaps",
                        "responses": {"200": _json({"type": "object", "properties": {
                            "id": {"type": "string"},
                            "maps": {"type": "array", "items": _ref("Map")}}}, "The maps"),
                            "404": _ERRORS["404"], "401": _ERRORS["401"]}},
            },
            "/healthz": {"get": {"summary": "Liveness", "operationId": "health",
                                 "security": [],
                                 "responses": {"200": _json({"type": "object"}, "Alive")}}},
            "/metrics": {"get": {"summary": "Prometheus text format",
                                 "operationId": "metrics",
                                 "responses": {"200": {"description": "Metrics", "content": {
                                     "text/plain": {"schema": {"type": "string"}}}},
                                     "401": _ERRORS["401"]}}},
            "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                      "responses": {"200": _json({"type": "object"},
                                                                 "OpenAPI 3.1")}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Required on TCP listeners; the "
                                           "Unix socket checks peer credentials instead"}},
            "schemas": {
                "Program": program,
                "StartRequest": start,
                "SwapRequest": swap,
                "Map": {"type": "object", "properties": {
                    "map": {"type": "string"}, "kind": {"type": "string",
                                                        "enum": ["hist", "table"]},
                    "unit": {"type": "string", "description": "Of a histogram's values"},
                    "rows": {"type": "array", "items": {"type": "object"}}}},
                "OutputLine": {"type": "object", "required": ["iter", "line"], "properties": {
                    "iter": {"type": "string", "description": "The iterator program"},
                    "line": {"type": "string", "description": "A line of what it wrote, "
                             "without its newline (bytes that are not UTF-8 replaced)"},
                    "bytes": {"type": "string", "contentEncoding": "base64",
                              "description": "The line's exact bytes, when they are not "
                              "UTF-8 (a binary record written with bpf_seq_write)"},
                    "partial": {"type": "boolean", "description": "No newline ends it: the "
                                "next record continues the line"}}},
                "OutputEnd": {"type": "object", "required": ["_ebpm", "output", "truncated"],
                              "properties": {
                    "_ebpm": {"const": "end"},
                    "output": {"type": "object", "additionalProperties": {"type": "integer"},
                               "description": "Bytes each iterator program wrote"},
                    "truncated": {"type": ["string", "null"],
                                  "enum": ["limit", "time", "error", None]},
                    "error": {"type": "string"}}},
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"}, "hint": {"type": "string"},
                    "verifier_log": {"type": "string"}}},
            },
        },
        "security": [{"bearer": []}],
    }
