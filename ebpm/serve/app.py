"""The agent's HTTP API on Starlette: routes, request limits and the error mapping.

    POST   /v1/programs               {ref, args?, allow_unsigned?, persist?} -> 201 {id, ...}
    GET    /v1/programs               every program: id, ref, digest, signer, status, ...
    GET    /v1/programs/{id}          one program
    GET    /v1/programs/{id}/events   decoded events, NDJSON or SSE (?follow, ?tail)
    GET    /v1/programs/{id}/maps     result maps now (histograms as buckets)
    GET    /v1/programs/{id}/output   its iterator programs run anew: their lines, NDJSON
    PUT    /v1/programs/{id}          {ref, args?, allow_unsigned?}: hot swap to another version
    DELETE /v1/programs/{id}          detach and unload
    GET    /healthz, /metrics, /openapi.json
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ebpm import __version__
from ebpm.errors import (
    EbpmError,
    LoadError,
    NotFoundError,
    OfflineError,
    PolicyError,
    SignatureError,
    UnreachableError,
    UsageError,
    WasmError,
)
from ebpm.serve.registry import ProgramRegistry, hist_buckets

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from ebpm.serve.auth import ASGIApp, Receive, Scope, Send
    from ebpm.serve.metrics import AgentCollector

__all__ = ["MAX_BODY", "SEND_TIMEOUT", "BodyLimit", "ClientStalled", "RequestTooLarge", "build_app",
           "quiet_stalled", "status_for"]

log = logging.getLogger("ebpm.serve")
MAX_BODY = 64 << 10  # bytes: the largest request body the API reads
_KEEPALIVE = 15.0  # seconds between SSE comments on an idle stream
SEND_TIMEOUT = 60.0  # seconds a long answer waits for its client to take more (nginx's default)
_POST_KEYS = {"ref", "args", "allow_unsigned", "persist"}
_PUT_KEYS = {"ref", "args", "allow_unsigned"}


class ClientStalled(Exception):  # noqa: N818 - an event, not a failure of the agent
    """A client that took none of its long answer's bytes for the send timeout: raised out of
    the application so that uvicorn closes the connection (its report of it is dropped by
    `quiet_stalled`: the agent has logged it in one line)."""


def quiet_stalled(record: logging.LogRecord) -> bool:
    """A filter for uvicorn's error log: False for its report of a `ClientStalled`."""
    return not (record.exc_info and isinstance(record.exc_info[1], ClientStalled))


class RequestTooLarge(UsageError):
    """A request body over the limit (raised while the body is read: HTTP 413)."""


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get 413 (by Content-Length, or while read)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _send_error(send, 413, f"request body too large (limit {self.max_bytes} "
                              "bytes)")
            return
        seen = 0
        started = False

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise RequestTooLarge(f"request body too large (limit {self.max_bytes} "
                                          "bytes)")
            return message

        async def tracking(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except RequestTooLarge:
            if not started:
                await _send_error(send, 413, f"request body too large (limit "
                                  f"{self.max_bytes} bytes)")


async def _send_error(send: Send, status: int, message: str) -> None:
    body = (json.dumps({"error": message}) + "\n").encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def status_for(err: EbpmError) -> int:
    """The HTTP status of an ebpm error."""
    if isinstance(err, RequestTooLarge):
        return 413
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, (SignatureError, PolicyError)):
        return 403
    if isinstance(err, UsageError):
        return 400
    if isinstance(err, (LoadError, WasmError)):
        return 422
    if isinstance(err, (UnreachableError, OfflineError)):
        return 502
    return 500


def _error(status: int, message: str, hint: str | None = None, **extra: Any) -> Response:
    from starlette.responses import JSONResponse

    body: dict[str, Any] = {"error": message}
    if hint:
        body["hint"] = hint
    body.update(extra)
    return JSONResponse(body, status_code=status)


def _from_error(err: EbpmError) -> Response:
    extra: dict[str, Any] = {}
    if isinstance(err, LoadError) and err.verifier_log:
        from ebpm.loader.session import verifier_tail

        extra["verifier_log"] = verifier_tail(err.verifier_log)
    return _error(status_for(err), err.message, err.hint, **extra)


async def _json_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"malformed JSON: {err}", hint='send e.g. {"ref": "NAME:VERSION"}') \
            from err
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object", hint='e.g. {"ref": "NAME:VERSION"}')
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UsageError(f"unknown field(s): {', '.join(unknown)}",
                         hint="fields: " + ", ".join(sorted(allowed)))
    ref = data.get("ref")
    if not isinstance(ref, str) or not ref:
        raise UsageError("field ref: a package reference is required")
    args = data.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise UsageError("field args: expected a list of strings")
    for flag in ("allow_unsigned", "persist"):
        if not isinstance(data.get(flag, False), bool):
            raise UsageError(f"field {flag}: expected true or false")
    return data


def _bool_param(request: Request, name: str, default: bool) -> bool:
    text = request.query_params.get(name)
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes", ""):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise UsageError(f"query parameter {name}: expected true or false")


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if text == "all":
        return -1
    if not text.isdigit():
        raise UsageError(f"query parameter {name}: expected a number or 'all'")
    return int(text)


def _encode_ndjson(item: Any) -> str:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"


def _encode_sse(item: Any, event: str = "") -> str:
    head = f"event: {event}\n" if event else ""
    return head + "data: " + json.dumps(item, separators=(",", ":"), ensure_ascii=False,
                                        default=str) + "\n\n"


def maps_document(snapshots: list[Any]) -> list[dict[str, Any]]:
    out = []
    for snap in snapshots:
        rows = []
        for key, value in snap.rows:
            if snap.kind == "hist" and isinstance(value, dict):
                rest = {k: v for k, v in value.items() if k != "slots"}
                rows.append({"key": key, **rest, "buckets": hist_buckets(value.get("slots", []))})
            else:
                rows.append({"key": key, "value": value})
        doc: dict[str, Any] = {"map": snap.name, "kind": snap.kind, "rows": rows}
        if snap.unit:
            doc["unit"] = snap.unit
        out.append(doc)
    return out


def build_app(programs: ProgramRegistry, *, collector: AgentCollector | None = None,
              reader_capacity: int = 4096, output_reads: int = 8,
              event_streams: int = 64, send_timeout: float = SEND_TIMEOUT) -> Starlette:
    """The Starlette application over `programs` (auth and limits wrap it in `server`);
    at most `output_reads` iterator reads (GET .../output) and `event_streams` event streams
    (GET .../events) at once, each dropped when its client takes none of it for
    `send_timeout` seconds."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from ebpm.serve.openapi import document

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except EbpmError as err:
                return _from_error(err)
        endpoint.__name__ = handler.__name__
        return endpoint

    async def create(request: Request) -> Response:
        body = await _json_body(request, _POST_KEYS)
        prog = await run_in_threadpool(
            programs.start, body["ref"], args=body.get("args", []),
            allow_unsigned=body.get("allow_unsigned", False), persist=body.get("persist", False))
        return JSONResponse(prog.describe(), status_code=201)

    async def listing(request: Request) -> Response:
        return JSONResponse({"programs": [p.describe() for p in programs.list()]})

    async def show(request: Request) -> Response:
        return JSONResponse(programs.get(request.path_params["id"]).describe())

    async def swap(request: Request) -> Response:
        body = await _json_body(request, _PUT_KEYS)
        pid = request.path_params["id"]
        programs.get(pid)
        prog = await run_in_threadpool(
            programs.swap, pid, body["ref"], args=body.get("args"),
            allow_unsigned=body.get("allow_unsigned", False))
        return JSONResponse(prog.describe())

    async def delete(request: Request) -> Response:
        pid = request.path_params["id"]
        programs.get(pid)
        prog = await run_in_threadpool(programs.stop, pid)
        return JSONResponse(prog.describe())

    async def maps(request: Request) -> Response:
        prog = programs.get(request.path_params["id"])
        snapshots = await run_in_threadpool(prog.current.snapshot_maps)
        return JSONResponse({"id": prog.id, "maps": maps_document(snapshots)})

    from ebpm.serve.slots import RETRY_AFTER, Slots

    reads = Slots(output_reads, "output reads", "--max-output-reads")
    streams = Slots(event_streams, "event streams", "--max-streams")

    class Held(StreamingResponse):
        """A capped answer: its place (`slots`, taken) is given back once it is over (read to
        its end, failed, or the client gone), also if it never started. A client that takes
        none of its bytes for `send_timeout` seconds is dropped (`ClientStalled`): else one
        that stops reading would keep its place, and what the answer holds, for as long as
        it keeps the connection open."""

        def __init__(self, slots: Slots, content: Any, media_type: str) -> None:
            super().__init__(content, media_type=media_type, headers={"cache-control": "no-store"})
            self.slots = slots

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            import anyio

            async def bounded(message: Any) -> None:
                try:
                    with anyio.fail_after(send_timeout):
                        await send(message)
                except TimeoutError:
                    log.warning("dropped a client of %s %s: it took none of the answer for "
                                "%g s (ebpm serve --send-timeout)", scope["method"],
                                scope["path"], send_timeout)
                    raise ClientStalled from None

            try:
                await super().__call__(scope, receive, bounded)
            finally:
                self.slots.give_back()
                await self.body_iterator.aclose()  # type: ignore[attr-defined]

    def refused(slots: Slots) -> Response | None:
        """None with a place of `slots` taken, else the 503 that says the cap is reached."""
        body = slots.take()
        return None if body is None else JSONResponse(
            body, status_code=503, headers={"retry-after": str(RETRY_AFTER)})

    async def output(request: Request) -> Response:
        from ebpm.serve.output import MAX_OUTPUT, records

        prog = programs.get(request.path_params["id"])
        limit = _int_param(request, "limit", MAX_OUTPUT)
        if not 0 <= limit <= MAX_OUTPUT:
            raise UsageError(f"query parameter limit: at most {MAX_OUTPUT} bytes",
                             hint="leave it out for the most one read returns")
        gen = prog.current
        if not gen.iterators:
            raise NotFoundError(f"program {prog.id}: {gen.loaded.package.config.name} has no "
                                "iterator program (SEC(\"iter/...\"))",
                                hint=f"its events: GET /v1/programs/{prog.id}/events; its "
                                f"maps: GET /v1/programs/{prog.id}/maps")
        if gen.ended:
            return _error(409, f"program {prog.id}: its run is over ({prog.status})",
                          "start it again to read its iterators")
        return refused(reads) or Held(reads, records(gen.open_iterators, limit=limit),
                                      media_type="application/x-ndjson")

    async def events(request: Request) -> Response:
        prog = programs.get(request.path_params["id"])
        follow = _bool_param(request, "follow", True)
        tail = _int_param(request, "tail", 0)
        wants = request.query_params.get("format") or (
            "sse" if "text/event-stream" in request.headers.get("accept", "") else "ndjson")
        if wants not in ("sse", "ndjson"):
            raise UsageError(f"format {wants!r}: expected ndjson or sse")
        sse = wants == "sse"
        full = refused(streams)  # (before it subscribes: a refused one costs the fan-out nothing)
        if full is not None:
            return full
        fanout = prog.fanout
        history = fanout.recent(None if tail < 0 else tail)
        reader = fanout.subscribe(capacity=max(reader_capacity, len(history)), replay=history)

        async def stream() -> AsyncIterator[str]:
            reported = 0
            try:
                while True:
                    try:
                        batch = await reader.next_batch(_KEEPALIVE if follow else 0)
                    except EOFError:
                        break
                    if reader.lost != reported:
                        reported = reader.lost
                        notice = {"lost": reported}
                        yield _encode_sse(notice, "lost") if sse else _encode_ndjson(
                            {"_ebpm": "lost", **notice})
                    if batch:  # events arrive JSON-encoded (once, by the program's thread)
                        if sse:
                            yield "".join(f"data: {e}\n\n" for e in batch)
                        else:
                            yield "\n".join(batch) + "\n"
                    elif not follow:
                        break
                    elif sse:
                        yield ": keepalive\n\n"
                end = {"delivered": reader.delivered, "lost": reader.lost}
                if reader.closed:  # the stream ended with the run: how it ended
                    end.update(fanout.outcome)
                yield _encode_sse(end, "end") if sse else _encode_ndjson({"_ebpm": "end", **end})
            finally:
                reader.close()

        return Held(streams, stream(), "text/event-stream" if sse else "application/x-ndjson")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__,
                             "programs": len(programs.list())})

    async def metrics(request: Request) -> Response:
        from ebpm.serve.metrics import CONTENT_TYPE, exposition

        if collector is None:
            return _error(404, "metrics are off on this agent")
        data = await run_in_threadpool(exposition, collector)
        return Response(data, media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document())

    routes = [
        Route("/v1/programs", guarded(create), methods=["POST"]),
        Route("/v1/programs", guarded(listing), methods=["GET"]),
        Route("/v1/programs/{id}", guarded(show), methods=["GET"]),
        Route("/v1/programs/{id}", guarded(swap), methods=["PUT"]),
        Route("/v1/programs/{id}", guarded(delete), methods=["DELETE"]),
        Route("/v1/programs/{id}/events", guarded(events), methods=["GET"]),
        Route("/v1/programs/{id}/maps", guarded(maps), methods=["GET"]),
        Route("/v1/programs/{id}/output", guarded(output), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", guarded(metrics), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, f"{request.method} {request.url.path}: no such endpoint",
                      "see GET /openapi.json")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, f"{request.method} {request.url.path}: method not allowed")

    async def crashed(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ClientStalled):  # (said in one line already; never sent)
            log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed,
                                                       Exception: crashed})
