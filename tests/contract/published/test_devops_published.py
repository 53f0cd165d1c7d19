"""Azure DevOps, as Microsoft documents it, through mlbot's real adapter.

Sources (MicrosoftDocs/vsts-rest-api-specs):
- `specification/approvalsAndChecks/7.0/httpExamples/approvals/GET__QueryApproval.json`
  at 05d0a6942e8a190ab6d608962b2664e735a56f5c -> examples/vsts_approvals_query_7.0.json
- `specification/approvalsAndChecks/7.1/httpExamples/approvals/PATCH__UpdateApproval.json`
  at c0155ba2a0a5eb4d24ba2b164969d72337db6ed6 -> examples/vsts_approvals_update_7.1.json
- `specification/approvalsAndChecks/7.1/pipelinesapproval.json` at
  6dcc27eda10902f4c7472bb0dd06b5157b12ef15: the `Approval` schema has `_links,
  blockedApprovers, createdOn, executionOrder, id, instructions, lastModifiedOn,
  minRequiredApprovers, permissions, status, steps` and no `pipeline`.
- Pipelines - List and Definitions - List (`name` filter, `x-ms-continuationtoken` paging):
  `specification/pipelines/7.1/pipelines.json` at d3703352a5be53fd6567de694b8ecf9c3294a5f8
  and the Build Definitions - List reference.

Each example body is served unchanged by a stand-in on 127.0.0.1 (or, for paging, by
the emulator configured with small pages) to `AzureDevOpsPipelines`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitoring.azure_calls import RetryPolicy
from monitoring.devops import AzureDevOpsPipelines
from sandbox.devops_emulator import DevOpsEmulator

EXAMPLES = Path(__file__).parent / "examples"
PAT = "published-pat"


def _example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


class PublishedApprovals:
    """Answers the approvals calls with Microsoft's published bodies, and records them."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/fabrikam"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path_qs, body))
        if request.path.endswith("/_apis/pipelines/approvals"):
            name = (
                "vsts_approvals_query_7.0.json"
                if request.method == "GET"
                else "vsts_approvals_update_7.1.json"
            )
            return web.json_response(_example(name))
        return web.Response(status=404, text="Not found")


@pytest.fixture
async def published() -> AsyncIterator[PublishedApprovals]:
    server = PublishedApprovals()
    await server.start()
    yield server
    await server.stop()


def _adapter(org_url: str) -> AzureDevOpsPipelines:
    return AzureDevOpsPipelines(
        org_url, "RM", pat=PAT, policy=RetryPolicy(attempts=1, timeout_s=5.0)
    )


async def test_documented_pending_approvals_are_read(published: PublishedApprovals) -> None:
    approvals = await _adapter(published.base_url).list_pending_approvals()

    assert [a.id for a in approvals] == [
        "ee14f612-6838-43c0-b445-db238ef14153",
        "06239b11-a904-43a1-be6a-0d44026bd121",
    ]
    assert all(a.is_pending for a in approvals)
    assert approvals[0].created_at == datetime(2020, 11, 19, 8, 14, 49, 580000, tzinfo=UTC)
    # The documented shape names no pipeline or run: mlbot must not invent them.
    assert all(a.pipeline_id is None and a.run_id is None for a in approvals)
    # Nor an environment: none is known until a run's timeline says where they wait.
    assert all(a.environment is None for a in approvals)
    method, path, _ = next(r for r in published.requests if "/approvals" in r[1])
    assert method == "GET" and "state=pending" in path and "api-version=7.1" in path


async def test_documented_approval_update_names_who_decided(
    published: PublishedApprovals,
) -> None:
    decided = await _adapter(published.base_url).decide_approval(
        "aab27959-a5be-4ee3-97ca-f19b3602cd2f", True, "Approving"
    )

    assert decided.status == "approved" and not decided.is_pending
    assert decided.decided_by == "User Name"
    assert decided.approvers == ("User Name",)
    assert decided.comment == "Approving"
    _, _, body = published.requests[-1]
    assert body == [
        {
            "approvalId": "aab27959-a5be-4ee3-97ca-f19b3602cd2f",
            "status": "approved",
            "comment": "Approving",
        }
    ]


async def test_a_pipeline_past_the_first_page_is_found() -> None:
    # A large project: the pipeline the bot queues sorts after hundreds of others.
    others = tuple(f"app-{n:03d}-ci" for n in range(250))
    emulator = DevOpsEmulator(pat=PAT, pipelines=(*others, "zz-training-pipeline"))
    emulator.pipelines_page_size = 100
    await emulator.start()
    try:
        ref = await AzureDevOpsPipelines(
            emulator.org_url, "mlops", pat=PAT, policy=RetryPolicy(attempts=1, timeout_s=5.0)
        ).find_pipeline("ZZ-Training-Pipeline")
        assert ref.name == "zz-training-pipeline"
        assert ref.id == emulator.pipeline_named("zz-training-pipeline").id
        # Looked up by name on the server, not by reading every page.
        (lookup,) = emulator.requests_to("/mlops/_apis/build/definitions", "GET")
        assert lookup.query.get("name") == "ZZ-Training-Pipeline"
    finally:
        await emulator.stop()


async def test_the_emulated_pipeline_list_pages_as_documented() -> None:
    import aiohttp

    emulator = DevOpsEmulator(pat=PAT, pipelines=tuple(f"p{n}" for n in range(5)))
    emulator.pipelines_page_size = 2
    await emulator.start()
    try:
        names: list[str] = []
        token: str | None = None
        async with aiohttp.ClientSession(auth=aiohttp.BasicAuth("", PAT)) as http:
            for _ in range(5):
                params = {"api-version": "7.1"} | ({"continuationToken": token} if token else {})
                async with http.get(
                    f"{emulator.org_url}/mlops/_apis/pipelines", params=params
                ) as r:
                    assert r.status == 200
                    names += [item["name"] for item in (await r.json())["value"]]
                    token = r.headers.get("x-ms-continuationtoken")
                if not token:
                    break
        assert names == ["p0", "p1", "p2", "p3", "p4"]
    finally:
        await emulator.stop()
