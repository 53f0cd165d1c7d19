"""At INFO, mlbot's log says one line per meaningful thing: libraries' chatter is held back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.logs import configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    touched = ["apscheduler", "mail.log", "azure", "monitoring"]
    levels = {name: logging.getLogger(name).level for name in touched}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.mark.usefixtures("restored_logging")
def test_scheduler_runs_and_smtp_commands_stay_out_of_an_info_log() -> None:
    configure_logging("INFO", [])
    # APScheduler logs three lines per timer (added, running, executed), the mail sink
    # one per SMTP command: none of them is news to an operator.
    assert not logging.getLogger("apscheduler.executors.default").isEnabledFor(logging.INFO)
    assert not logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.INFO)
    assert not logging.getLogger("mail.log").isEnabledFor(logging.INFO)
    assert logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.WARNING)
    assert logging.getLogger("monitoring.engine").isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("restored_logging")
def test_debug_is_mlbot_s_own_debug_not_the_libraries() -> None:
    configure_logging("DEBUG", [])
    assert logging.getLogger("monitoring.engine").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.INFO)
    assert logging.getLogger("apscheduler.scheduler").isEnabledFor(logging.WARNING)
