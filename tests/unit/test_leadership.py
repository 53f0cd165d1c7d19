"""The leader lease as a state machine: who may act, and when a leader must stop."""

from __future__ import annotations

import pytest

from domain.leadership import Leadership, LeaseRecord, LeaseTerms, Role

TERMS = LeaseTerms(duration_s=20.0, renew_every_s=5.0)


def held(epoch: int, owner: str = "a") -> LeaseRecord:
    return LeaseRecord(owner=owner, epoch=epoch, held=True)


def test_a_lease_must_last_at_least_two_renewals() -> None:
    with pytest.raises(ValueError, match="two renewal intervals"):
        LeaseTerms(duration_s=8.0, renew_every_s=5.0)
    with pytest.raises(ValueError):
        LeaseTerms(duration_s=20.0, renew_every_s=0.0)
    assert TERMS.acting_window_s == 15.0
    assert TERMS.takeover_bound_s == 25.0


def test_a_follower_never_acts_and_knows_who_leads() -> None:
    state = Leadership("b", TERMS)
    assert not state.may_act(0.0) and state.fence(0.0) is None
    role = state.answered(0.0, LeaseRecord(owner="a", epoch=3, held=False))
    assert role is Role.FOLLOWER
    view = state.view(1.0)
    assert (view.role, view.leader, view.epoch) == (Role.FOLLOWER, "a", 3)


def test_an_expired_lease_nobody_took_means_no_leader() -> None:
    state = Leadership("b", TERMS)
    state.answered(0.0, LeaseRecord(owner="a", epoch=3, held=False, valid=False))
    assert state.view(0.0).leader is None


def test_the_leader_acts_until_one_renewal_before_its_lease_could_expire() -> None:
    state = Leadership("a", TERMS)
    assert state.answered(100.0, held(1)) is Role.LEADER
    fence = state.fence(114.9)
    assert fence is not None and (fence.owner, fence.epoch) == ("a", 1)
    # The database stamped the expiry at or after 100 + 20: the leader stops at 115.
    assert not state.may_act(115.0) and state.fence(115.0) is None


def test_renewing_extends_the_window_from_when_the_renewal_was_sent() -> None:
    state = Leadership("a", TERMS)
    state.answered(0.0, held(1))
    state.answered(5.0, held(1))
    assert state.may_act(19.9) and not state.may_act(20.0)


def test_a_leader_cut_off_from_the_database_stops_when_its_window_closes() -> None:
    state = Leadership("a", TERMS)
    state.answered(0.0, held(1))
    assert state.failed(6.0) is Role.LEADER  # still inside the window
    assert state.failed(11.0) is Role.LEADER
    assert state.failed(16.0) is Role.FOLLOWER
    assert not state.may_act(16.0)
    # Who leads is unknown until the database answers again.
    assert state.view(16.0).leader is None
    # Its next attempt still asks to renew the epoch it held.
    assert state.epoch == 1


def test_losing_the_lease_to_another_replica_stops_at_once() -> None:
    state = Leadership("a", TERMS)
    state.answered(0.0, held(1))
    role = state.answered(3.0, LeaseRecord(owner="b", epoch=2, held=False))
    assert role is Role.FOLLOWER
    assert not state.may_act(3.0) and state.epoch is None
    assert state.view(3.0).leader == "b"


def test_a_new_tenure_does_not_inherit_the_old_window() -> None:
    state = Leadership("a", TERMS)
    state.answered(10.0, held(1))
    # A slow answer about a *new* epoch: its window runs from when it was sent only.
    state.answered(2.0, held(2))
    assert state.epoch == 2
    assert state.may_act(16.9) and not state.may_act(17.0)


def test_releasing_stops_acting() -> None:
    state = Leadership("a", TERMS)
    state.answered(0.0, held(4))
    state.released()
    assert not state.may_act(1.0) and state.view(1.0).leader is None
