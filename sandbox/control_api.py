"""`/_sandbox/` routes: inspect and steer a running sandbox over HTTP.

- `GET  /_sandbox/state`               jobs, pipeline runs, approvals and the clock
- `POST /_sandbox/jobs`                submit a circuit's next attempt now (201)
- `POST /_sandbox/jobs/{name}/status`  force a job's Azure ML status
- `POST /_sandbox/approvals`           open a pending approval on a new run (201)
- `GET  /_sandbox/emails`              the emails the sandbox's mail sink received

Bad input is answered 400 (or 404 for an unknown job) with `{"error": "..."}`.
These routes exist only in sandbox mode; they carry no authentication.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.scenario import (
    ScenarioError,
    approval_from_dict,
    job_plan_from_dict,
)
from sandbox.stack import SandboxStack, UnknownJobError

_STACK_KEY: web.AppKey[SandboxStack] = web.AppKey("sandbox_stack", SandboxStack)
_MAX_BODY_BYTES = 64 * 1024


def add_sandbox_routes(app: web.Application, stack: SandboxStack) -> None:
    """Register the control and inspection routes of `stack` on `app`."""
    app[_STACK_KEY] = stack
    app.router.add_get("/_sandbox/state", _state)
    app.router.add_get("/_sandbox/emails", _emails)
    app.router.add_post("/_sandbox/jobs", _submit_job)
    app.router.add_post("/_sandbox/jobs/{name}/status", _set_job_status)
    app.router.add_post("/_sandbox/approvals", _add_approval)
    app.router.add_post("/_sandbox/service_hooks", _subscribe_service_hook)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > _MAX_BODY_BYTES:
        raise _BadRequest("the body is too large")
    raw = await request.read()
    if len(raw) > _MAX_BODY_BYTES:
        raise _BadRequest("the body is too large")
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    return body


def _stack(request: web.Request) -> SandboxStack:
    return request.app[_STACK_KEY]


async def _state(request: web.Request) -> web.Response:
    return web.json_response(_stack(request).state())


async def _emails(request: web.Request) -> web.Response:
    """`{"emails": [...], "received": n, "smtp": "127.0.0.1:port" | null}`, oldest first."""
    sink = _stack(request).smtp
    return web.json_response(
        {
            "emails": sink.views(),
            "received": sink.received,
            "smtp": f"127.0.0.1:{sink.port}" if sink.port else None,
        }
    )


async def _submit_job(request: web.Request) -> web.Response:
    """Body: `{"circuit", "duration_s", "outcomes"?, "error_message"?, "workspace"?, ...}`."""
    try:
        body = await _json_object(request)
        workspace = body.pop("workspace", None)
        if workspace is not None and not isinstance(workspace, str):
            raise ScenarioError("workspace", "expected text")
        plan = job_plan_from_dict(body, "")
        job = _stack(request).submit_job(plan, workspace=workspace)
    except _BadRequest as exc:
        return _error(400, exc.message)
    except ScenarioError as exc:
        return _error(400, str(exc))
    return web.json_response(job, status=201)


async def _set_job_status(request: web.Request) -> web.Response:
    """Body: `{"status": "Failed", "workspace"?}`."""
    name = request.match_info["name"]
    try:
        body = await _json_object(request)
        unknown = sorted(set(body) - {"status", "workspace"})
        if unknown:
            raise ScenarioError(unknown[0], "unknown field (expected status, workspace)")
        if "status" not in body:
            raise ScenarioError("status", "is required")
        workspace = body.get("workspace")
        if workspace is not None and not isinstance(workspace, str):
            raise ScenarioError("workspace", "expected text")
        job = _stack(request).set_job_status(name, body["status"], workspace=workspace)
    except _BadRequest as exc:
        return _error(400, exc.message)
    except ScenarioError as exc:
        return _error(400, str(exc))
    except UnknownJobError:
        return _error(404, f"no job named {name!r}")
    return web.json_response(job)


async def _add_approval(request: web.Request) -> web.Response:
    """Body: `{"pipeline", "stage", "environment", "approvers"?, "instructions"?}`."""
    stack = _stack(request)
    try:
        body = await _json_object(request)
        for required in ("pipeline", "environment"):
            if body.get(required) is None:
                raise ScenarioError(required, "is required")
        if "after_s" in body:
            raise ScenarioError("after_s", "not accepted here: the approval opens now")
        spec = approval_from_dict(body, "", stack.scenario.pipelines)
        approval = stack.add_approval(spec)
    except _BadRequest as exc:
        return _error(400, exc.message)
    except ScenarioError as exc:
        return _error(400, str(exc))
    return web.json_response(approval, status=201)


async def _subscribe_service_hook(request: web.Request) -> web.Response:
    """Body: `{"url"}`: where the emulated Azure DevOps posts its service hooks."""
    try:
        body = await _json_object(request)
    except _BadRequest as exc:
        return _error(400, exc.message)
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return _error(400, "url: an http(s) URL is required")
    _stack(request).service_hooks.subscribe(url)
    return web.json_response({"subscribed": url}, status=201)
