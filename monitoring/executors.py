"""One bounded thread pool per outside service that is reached through a blocking SDK.

azure-ai-ml, azure-devops and the Azure Monitor query client are synchronous, so their
calls run in worker threads. Each service gets its own small pool: a service that stops
answering ties up only its own threads, while asyncio's default executor stays free for
what must run there (the Bot Connector client posts to Teams with `requests` on it, and
aiohttp resolves host names on it), and the other services keep working. Email needs no
pool: aiosmtplib is asynchronous.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExecutorSizes:
    """Worker threads per service.

    Azure ML: one listing per workspace per pass, plus `get`s and cancels from commands.
    Azure DevOps: queued runs, approvals, variable-group refreshes. Azure Monitor: one
    query per watched endpoint at a time.
    """

    azureml: int = 4
    devops: int = 4
    metrics: int = 2

    def __post_init__(self) -> None:
        for name in ("azureml", "devops", "metrics"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} needs at least one worker thread")


@dataclass(frozen=True, slots=True)
class ServiceExecutors:
    """The pools, built once by the composition root and handed to each adapter."""

    azureml: ThreadPoolExecutor
    devops: ThreadPoolExecutor
    metrics: ThreadPoolExecutor

    @classmethod
    def create(cls, sizes: ExecutorSizes | None = None) -> ServiceExecutors:
        chosen = sizes or ExecutorSizes()
        # Threads start on first use, so pools of unconfigured services cost nothing.
        return cls(
            azureml=_pool("azureml", chosen.azureml),
            devops=_pool("devops", chosen.devops),
            metrics=_pool("metrics", chosen.metrics),
        )

    def shutdown(self) -> None:
        """Stop taking work and drop what is queued; calls in flight end on their own.

        Not waiting: a thread stuck on a service that does not answer must not hold up
        the process's exit beyond the SDK's own socket timeouts.
        """
        for pool in (self.azureml, self.devops, self.metrics):
            pool.shutdown(wait=False, cancel_futures=True)


def _pool(service: str, size: int) -> ThreadPoolExecutor:
    # Named threads show which service a stuck thread belongs to in a dump.
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"mlbot-{service}")
