"""The consumer watchdog's decisions, on a stand-in consumer and a clock the tests move."""

from __future__ import annotations

from worker.consume.watchdog import ConsumerWatchdog, Health

TIMEOUT_S = 60.0


class StandInMember:
    """In or out of its group as the test says; counts the replacements asked for."""

    def __init__(self, out: bool) -> None:
        self.out = out
        self.replacements = 0

    def out_of_group(self) -> bool:
        return self.out

    def replace_consumer(self) -> None:
        self.replacements += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watchdog(member: StandInMember, clock: Clock, heard: list[Health]) -> ConsumerWatchdog:
    return ConsumerWatchdog(member, TIMEOUT_S, heard.append, clock=clock)


def test_a_member_is_left_alone() -> None:
    """A consumer in its group is never replaced, however long it runs."""
    member, clock, heard = StandInMember(out=False), Clock(), list[Health]()
    dog = watchdog(member, clock, heard)
    for _ in range(10):
        clock.now += TIMEOUT_S
        dog.look()
    assert heard == [Health.MEMBER] * 10
    assert member.replacements == 0


def test_out_of_group_up_to_the_timeout_is_joining() -> None:
    """Out of the group for at most the timeout is a join or a rebalance: no replacement."""
    member, clock, heard = StandInMember(out=True), Clock(), list[Health]()
    dog = watchdog(member, clock, heard)
    dog.look()
    clock.now += TIMEOUT_S
    assert dog.look() is Health.JOINING
    assert member.replacements == 0


def test_out_of_group_past_the_timeout_is_replaced_once() -> None:
    """Past the timeout a new consumer is asked for; it gets a whole timeout to join."""
    member, clock, heard = StandInMember(out=True), Clock(), list[Health]()
    dog = watchdog(member, clock, heard)
    dog.look()
    clock.now += TIMEOUT_S + 1
    assert dog.look() is Health.STUCK
    clock.now += TIMEOUT_S  # the new consumer has not joined yet, within its timeout
    assert dog.look() is Health.JOINING
    assert member.replacements == 1
    clock.now += 1  # nor past it: asked again
    assert dog.look() is Health.STUCK
    assert member.replacements == 2


def test_rejoining_resets_the_timer() -> None:
    """Time out of the group adds up only while the consumer stays out."""
    member, clock, heard = StandInMember(out=True), Clock(), list[Health]()
    dog = watchdog(member, clock, heard)
    dog.look()
    clock.now += TIMEOUT_S
    member.out = False
    assert dog.look() is Health.MEMBER
    member.out = True
    dog.look()
    clock.now += TIMEOUT_S
    assert dog.look() is Health.JOINING
    assert member.replacements == 0


def test_every_look_is_heard() -> None:
    """``on_health`` hears each verdict, so readiness can follow the consumer both ways."""
    member, clock, heard = StandInMember(out=True), Clock(), list[Health]()
    dog = watchdog(member, clock, heard)
    dog.look()
    clock.now += TIMEOUT_S + 1
    dog.look()
    member.out = False
    dog.look()
    assert heard == [Health.JOINING, Health.STUCK, Health.MEMBER]
