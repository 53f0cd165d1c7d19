"""Benchmark: list 10,000 jobs across 10 workspaces through azure-ai-ml against the emulator.

Prints the wall time of the listings (sequential and concurrent), the time of the first
call (SDK import and client creation) and the peak resident memory of the process.
The run fails (exit 1) if a listing loses a job or returns one twice, or anything is
logged at WARNING or above while listing.
Run with `.venv/bin/python bench/list_jobs.py [--jobs N] [--workspaces N] [--page-size N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run_checks import RunChecks
from domain.jobs import Workspace
from monitoring.azure_calls import RetryPolicy
from monitoring.azureml import AzureMLJobSource, AzureMLOptions, CloudEndpoints
from sandbox.azureml_emulator import AzureMLEmulator, EmulatedJob
from sandbox.credentials import StaticTokenCredential

STATUSES = ("Queued", "Running", "Running", "Completed", "Failed", "Canceled")


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(total_jobs: int, workspace_count: int, page_size: int, checks: RunChecks) -> None:
    emulator = AzureMLEmulator(page_size=page_size)
    base_url = await emulator.start()
    try:
        workspaces = [
            Workspace("bench-sub", "rg-bench", f"ws{i:02d}") for i in range(workspace_count)
        ]
        start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        per_workspace = total_jobs // workspace_count
        emulator.add_jobs(
            EmulatedJob(
                workspace=ws,
                name=f"{ws.name}-job-{i:05d}",
                status=STATUSES[i % len(STATUSES)],
                experiment="circuit-training",
                tags={"circuit": f"PLANT{w:03d}/CIRCUIT{i:04d}"},
                created_at=start + dt.timedelta(seconds=i),
            )
            for w, ws in enumerate(workspaces)
            for i in range(per_workspace)
        )
        rss_before = peak_rss_mib()
        options = AzureMLOptions(
            retry=RetryPolicy(attempts=1, timeout_s=300),
            connection_verify=emulator.ca_path,
            cloud=CloudEndpoints(resource_manager=base_url),
        )
        source = AzureMLJobSource(StaticTokenCredential, workspaces, options)

        began = time.perf_counter()
        await source.get(workspaces[0], f"{workspaces[0].name}-job-00000")
        warmup_s = time.perf_counter() - began
        for ws in workspaces[1:]:  # create the other clients outside the measured listings
            await source.get(ws, f"{ws.name}-job-00000")
        emulator.requests.clear()

        with checks.timed():
            began = time.perf_counter()
            sequential = [await source.list_active(ws) for ws in workspaces]
            sequential_s = time.perf_counter() - began
            began = time.perf_counter()
            concurrent = await asyncio.gather(*(source.list_active(ws) for ws in workspaces))
            concurrent_s = time.perf_counter() - began

        expected = [
            f"{ws.name}/{ws.name}-job-{i:05d}" for ws in workspaces for i in range(per_workspace)
        ]
        for label, listings in (("sequential", sequential), ("concurrent", concurrent)):
            names = [
                f"{ws.name}/{job.name}"
                for ws, jobs in zip(workspaces, listings, strict=True)
                for job in jobs
            ]
            checks.items(expected, names, f"{label} listing: job")
        listed = sum(len(jobs) for jobs in sequential)
        pages = len(emulator.requests) // 2
        print(f"jobs listed:               {listed} in {workspace_count} workspaces")
        print(f"page size / pages:         {page_size} / {pages} per pass")
        print(f"first call (import+client): {warmup_s:8.2f} s")
        for label, seconds in (("sequential", sequential_s), ("concurrent", concurrent_s)):
            rate = listed / seconds
            print(f"list, {label}:          {seconds:8.2f} s  ({rate:,.0f} jobs/s)")
        print(f"peak RSS before listing:   {rss_before:8.1f} MiB")
        print(f"peak RSS of the process:   {peak_rss_mib():8.1f} MiB")
    finally:
        await emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    checks = RunChecks("list jobs")
    asyncio.run(run(args.jobs, args.workspaces, args.page_size, checks))
    sys.exit(checks.exit_code())


if __name__ == "__main__":
    main()
