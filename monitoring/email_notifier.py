"""Long-running reminders by email to the ML engineers (`mlEngineersEmail`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from domain.destinations import EMAIL, Destination
from domain.events import kinds_where
from domain.jobs import JobState, TrainingJob
from monitoring.email_delivery import EmailDeliveryError, EmailSender
from monitoring.email_message import render_long_running_email
from monitoring.notifier import DeliveryFailed
from store.monitoring import EventRecord, MonitoringStore

EMAILED_KINDS = kinds_where(emailed=True)


class EmailNotifier:
    def __init__(
        self,
        sender: EmailSender,
        jobs: MonitoringStore,
        clock: Callable[[], datetime],
        reminder_interval: Callable[[], timedelta],
    ) -> None:
        self._sender = sender
        self._jobs = jobs
        self._clock = clock
        self._interval = reminder_interval

    async def destinations(self, event: EventRecord) -> list[Destination]:
        if event.kind in EMAILED_KINDS and self._sender.is_configured:
            return [EMAIL]
        return []

    async def deliver(self, event: EventRecord, destination: Destination) -> str | None:
        payload = event.payload
        job = await self._job(event)
        running_for = timedelta(seconds=float(payload.get("running_for") or 0))
        message = render_long_running_email(
            job,
            running_for,
            int(payload.get("reminder") or 1),
            self._interval(),
            self._sender.sender,
            self._sender.recipients,
            self._clock(),
            event_key=event.key,
        )
        try:
            await self._sender.send(message)
        except EmailDeliveryError as exc:
            raise DeliveryFailed(exc.reason, permanent=exc.permanent) from None
        return None

    async def _job(self, event: EventRecord) -> TrainingJob:
        stored = (
            (await self._jobs.job_records(event.workspace, [event.job_name or ""])).get(
                event.job_name or ""
            )
            if event.workspace
            else None
        )
        if stored is not None:
            return stored.job
        payload = event.payload
        return TrainingJob(
            workspace=event.workspace or "",
            name=event.job_name or "",
            display_name=str(payload.get("display_name") or event.job_name or ""),
            experiment="",
            circuit=event.circuit,
            status=str(payload.get("status") or "Running"),
            state=JobState.RUNNING,
            studio_url=payload.get("studio_url"),
            attempt=int(payload.get("attempt") or 1),
        )
