"""Leases leave no keys behind (found by review): every process that executed a leased run (`lakemail
runner`, each `lakemail process`) left its `lakemail/lease/<host>/<pid>/<start>` key in the Dagster
instance's key-value store for ever, so a cron of `lakemail process` added a key a minute. A lease now
goes when its holder's run ends, and one whose holder died goes once it has expired."""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from orchestration import leases
from orchestration.leases import LEASE_TTL_S, Executor, execute_leased, lease

DEAD = [Executor("host-a", 1000 + i, 100.0 + i) for i in range(40)]  # processes that ran and ended


@dg.op
def noop() -> None:
    pass


@dg.job
def tiny_job() -> None:
    noop()


def stored(instance: dg.DagsterInstance, executors: list[Executor]) -> dict[str, str]:
    return dict(instance.run_storage.get_cursor_values({e.lease_key for e in executors}))


def renewed(instance: dg.DagsterInstance, executor: Executor) -> bool:
    deadline = time.monotonic() + 10
    while not stored(instance, [executor]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(stored(instance, [executor]))


def test_a_lease_goes_when_its_holder_ends(instance: dg.DagsterInstance) -> None:
    for executor in DEAD:
        with lease(instance, executor):
            assert renewed(instance, executor)  # held while the block runs
    assert stored(instance, DEAD) == {}


def test_a_lease_held_twice_in_one_process_stays_until_the_last_block_ends(
    instance: dg.DagsterInstance,
) -> None:
    [executor] = DEAD[:1]
    with lease(instance, executor):
        with lease(instance, executor):
            assert renewed(instance, executor)
        assert stored(instance, [executor])  # the outer block still runs: its lease stays
    assert stored(instance, [executor]) == {}


def test_expired_leases_of_dead_executors_go_and_live_ones_stay(instance: dg.DagsterInstance) -> None:
    now = time.time()
    killed = {e.lease_key: f"{now - LEASE_TTL_S - 5:.3f}" for e in DEAD}  # SIGKILLed holding their lease
    live = Executor("elsewhere", 4242, 1.0)  # another host's runner, renewing
    instance.run_storage.set_cursor_values({**killed, live.lease_key: f"{now - 2:.3f}"})

    result = execute_leased(tiny_job, instance, {}, "test")

    assert result.success
    assert stored(instance, DEAD) == {}
    assert set(stored(instance, [live])) == {live.lease_key}  # not expired: its run is judged alive
    me = Executor.current()
    assert me.pid == os.getpid() and stored(instance, [me]) == {}  # the run ended: its lease went


def test_a_lease_renewed_while_expired_ones_are_deleted_stays(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: a holder that missed renewals (its database unreachable for 30 s) and renewed
    between another process's read of the expired leases and its delete lost its key, so its in-flight run
    was judged by its creation time, gone, while it ran."""
    stalled = Executor("elsewhere", 4242, 1.0)
    now = time.time()
    instance.run_storage.set_cursor_values({stalled.lease_key: f"{now - LEASE_TTL_S - 5:.3f}"})
    read = leases.lease_keys

    def read_then_renewed(instance: dg.DagsterInstance) -> dict[str, str]:
        found = read(instance)  # what the deleting process read: expired
        instance.run_storage.set_cursor_values({stalled.lease_key: f"{time.time():.3f}"})  # its renewal
        return found

    monkeypatch.setattr(leases, "lease_keys", read_then_renewed)
    assert leases.drop_expired_leases(instance, now) == 1
    assert set(stored(instance, [stalled])) == {stalled.lease_key}
