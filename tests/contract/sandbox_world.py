"""The sandbox "world" the engine and `mlbot watch` contract tests run against.

A manual clock, the sandbox stack on loopback, a migrated database, and the production
Azure ML and Azure DevOps adapters pointed at the sandbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from monitoring.azureml import AzureMLJobSource
from monitoring.devops import AzureDevOpsPipelines
from sandbox.clock import ManualClock
from sandbox.stack import SandboxStack
from store.database import Database
from store.monitoring import MonitoringStore


@dataclass
class SandboxWorld:
    stack: SandboxStack
    clock: ManualClock
    db: Database
    store: MonitoringStore
    source: AzureMLJobSource
    pipelines: AzureDevOpsPipelines


# make_world(scenario YAML, start of the manual clock)
WorldFactory = Callable[[str, datetime], Awaitable[SandboxWorld]]
