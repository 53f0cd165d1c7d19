"""Reading an approval's stage and environment from a timeline and a check suite."""

from __future__ import annotations

from monitoring.approval_places import (
    ApprovalPlace,
    GuardedResource,
    TimelineEntry,
    approvals_in_timeline,
    environment_ids,
)

STAGE = TimelineEntry("s-1", None, "Stage", "Deploy_Prod")
CHECKPOINT = TimelineEntry("C-1", "s-1", "Checkpoint", "Checkpoint")
APPROVAL = TimelineEntry("A-1", "c-1", "Checkpoint.Approval", "")


def test_an_approval_record_is_found_under_its_checkpoint_and_stage() -> None:
    found = approvals_in_timeline([STAGE, CHECKPOINT, APPROVAL])
    assert list(found) == ["a-1"]
    assert found["a-1"].check_suite_id == "C-1"
    assert found["a-1"].stage == "Deploy_Prod"


def test_an_approval_record_without_its_checkpoint_is_not_an_approval() -> None:
    orphan = TimelineEntry("A-2", "missing", "Checkpoint.Approval", "")
    under_a_job = TimelineEntry("A-3", "s-1", "Checkpoint.Approval", "")
    assert approvals_in_timeline([STAGE, orphan, under_a_job]) == {}


def test_a_parent_loop_gives_no_stage_rather_than_hanging() -> None:
    loop_a = TimelineEntry("x", "y", "Phase", "")
    loop_b = TimelineEntry("y", "x", "Phase", "")
    checkpoint = TimelineEntry("c", "x", "Checkpoint", "")
    found = approvals_in_timeline(
        [loop_a, loop_b, checkpoint, TimelineEntry("a", "c", "checkpoint.approval", "")]
    )
    assert found["a"].stage == ""


def test_only_environments_count_once_each() -> None:
    resources = [
        GuardedResource("queue", "1"),
        GuardedResource("environment", "7"),
        GuardedResource("Environment", "7"),
        GuardedResource("environment", "9"),
    ]
    assert environment_ids(resources) == ("7", "9")


def test_an_approval_guarding_several_environments_has_no_single_one() -> None:
    place = ApprovalPlace(1, "1", 2, "deploy", "Deploy", ("dev", "prod"))
    assert place.environment is None
    assert ApprovalPlace(1, "1", 2, "deploy", "Deploy", ("prod",)).environment == "prod"
