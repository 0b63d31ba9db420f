"""The node agent (`ebpm serve`): programs started, streamed, swapped and stopped over HTTP.

Modules: `registry` (programs and their runs), `fanout` (events to many readers),
`app` (routes, limits), `auth` (peer credentials, bearer token), `endpoint` (where it listens),
`metrics` (Prometheus), `server` (uvicorn, signals), `client` (for ps/stop/logs), `openapi`.
Starlette, uvicorn and prometheus_client are imported only here, and only when used.
"""
