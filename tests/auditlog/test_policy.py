"""check_policy(): budgets, modes, purposes, id types, set sizes, validity, refusals and
epoch rotation, each violation named at its first entry with a stable rule."""

from __future__ import annotations

from typing import Any

import pytest

from fiumatch.auditlog.bundle import Bundle, decode_bundle
from fiumatch.auditlog.entry import Direction, EventType, RefusalClause
from fiumatch.auditlog.errors import PolicyViolationError
from fiumatch.auditlog.verify import AgreementPolicy, PolicyRule, check_policy
from tests.auditlog.factories import log_signer
from tests.auditlog.scenario import T0, Node

DAY = 86_400_000
POLICY = AgreementPolicy(
    agreement="agr-ab-1", peer="fiu-b", modes=frozenset({"filter", "mutual"}),
    purposes=frozenset({"Suspected layering via shell companies"}),
    id_types=frozenset({"iban", "lei"}), budget_per_epoch=1000, max_set_size=600,
    valid_from_ms=T0, valid_until_ms=T0 + 30 * DAY, rotation_period_ms=7 * DAY,
)


class Log:
    def __init__(self) -> None:
        self.node = Node("fiu-a", log_signer())
        self.t = T0

    def add(self, event: EventType, dt: int = 1000, **fields: Any) -> int:
        self.t += dt
        return self.node.log_event(event, self.t, **fields)

    def evaluation(self, n: int, dt: int = 1000, **fields: Any) -> int:
        values: dict[str, Any] = dict(direction=Direction.IN, count_in=n, count_out=n, epoch=1,
                                      mode="filter", id_type="iban")
        values.update(fields)
        return self.add(EventType.EVALUATION, dt, **values)

    def refusal(self, clause: RefusalClause, dt: int = 1000, **fields: Any) -> int:
        values: dict[str, Any] = dict(direction=Direction.IN, clause=clause, epoch=1,
                                      mode="filter", id_type="iban", count_in=10, count_out=0,
                                      purpose=None)
        values.update(fields)
        return self.add(EventType.REFUSAL, dt, **values)

    def bundle(self) -> Bundle:
        self.node.checkpoint()
        return decode_bundle(self.node.export())


def start() -> Log:
    log = Log()
    log.add(EventType.EPOCH_ROTATED, epoch=1)
    log.add(EventType.SESSION_OPENED, direction=Direction.IN, epoch=1, mode="filter",
            id_type="iban", count_in=None, count_out=None)
    return log


def violation(log: Log) -> PolicyViolationError:
    with pytest.raises(PolicyViolationError) as info:
        check_policy(log.bundle(), [POLICY])
    return info.value


def test_a_log_within_the_agreement_passes() -> None:
    log = start()
    log.evaluation(400)
    log.evaluation(600, direction=Direction.OUT)  # our own requests have their own budget
    log.refusal(RefusalClause.BUDGET, count_in=700)  # 400 + 700 > 1000: rightly refused
    log.refusal(RefusalClause.MODE, mode="cardinality")
    log.refusal(RefusalClause.AUTH)
    log.add(EventType.QUERY, agreement="agr-ab-1", peer="fiu-b", id_type="lei")
    log.add(EventType.EPOCH_ROTATED, dt=DAY, epoch=2)
    log.evaluation(600, epoch=2)
    log.add(EventType.LOGIN)
    report = check_policy(log.bundle(), [POLICY])
    assert (report.requests, report.refusals, report.rotations) == (4, 3, 2)
    assert report.budget_used[("agr-ab-1", 1, "in")] == 400
    assert report.budget_used[("agr-ab-1", 2, "in")] == 600
    assert report.budget_used[("agr-ab-1", 1, "out")] == 600


@pytest.mark.parametrize(
    ("step", "rule"),
    [
        (lambda log: log.evaluation(700), PolicyRule.SET_TOO_LARGE),
        (lambda log: log.evaluation(10, mode="cardinality"), PolicyRule.MODE_NOT_ALLOWED),
        (lambda log: log.evaluation(10, id_type="passport"), PolicyRule.ID_TYPE_NOT_ALLOWED),
        (lambda log: log.evaluation(10, peer="fiu-c"), PolicyRule.PEER_MISMATCH),
        (lambda log: log.evaluation(10, agreement="agr-zz"), PolicyRule.UNKNOWN_AGREEMENT),
        (lambda log: log.evaluation(10, dt=31 * DAY), PolicyRule.OUTSIDE_VALIDITY),
        (lambda log: log.evaluation(10, epoch=0), PolicyRule.STALE_EPOCH),
        (lambda log: log.evaluation(10, dt=8 * DAY), PolicyRule.ROTATION_LATE),
        (lambda log: log.add(EventType.EPOCH_ROTATED, epoch=3), PolicyRule.ROTATION_SKIPPED),
        (lambda log: log.add(EventType.EPOCH_ROTATED, dt=8 * DAY, epoch=2),
         PolicyRule.ROTATION_LATE),
        (lambda log: log.add(EventType.QUERY, agreement="agr-ab-1",
                             purpose="Curiosity about a neighbour"),
         PolicyRule.PURPOSE_NOT_ALLOWED),
        (lambda log: log.refusal(RefusalClause.MODE), PolicyRule.UNJUSTIFIED_REFUSAL),
        (lambda log: log.refusal(RefusalClause.BUDGET), PolicyRule.UNJUSTIFIED_REFUSAL),
        (lambda log: log.refusal(RefusalClause.NO_AGREEMENT), PolicyRule.UNJUSTIFIED_REFUSAL),
        (lambda log: log.refusal(RefusalClause.SET_SIZE, agreement=None),
         PolicyRule.UNJUSTIFIED_REFUSAL),
    ],
)
def test_each_rule_names_the_first_bad_entry(step: Any, rule: PolicyRule) -> None:
    log = start()
    log.evaluation(100)
    bad = step(log)
    log.evaluation(100)  # later entries do not move the location
    err = violation(log)
    assert err.rule == rule.value
    assert err.location == f"entry {bad}"
    assert err.details["rule"] == rule.value


def test_budget_is_per_epoch_and_direction() -> None:
    log = start()
    log.evaluation(600)
    bad = log.evaluation(500)
    err = violation(log)
    assert (err.rule, err.location, err.found) == ("budget_exceeded", f"entry {bad}", 1100)
    assert err.expected == "<= 1000"


def test_justified_refusals_of_other_clauses_pass() -> None:
    log = start()
    log.refusal(RefusalClause.SET_SIZE, count_in=601)
    log.refusal(RefusalClause.ID_TYPE, id_type="passport")
    log.refusal(RefusalClause.PURPOSE, purpose="Curiosity about a neighbour")
    log.refusal(RefusalClause.PEER, peer="fiu-c")
    log.refusal(RefusalClause.EPOCH, epoch=0)
    log.refusal(RefusalClause.NO_AGREEMENT, agreement="agr-unknown")
    log.refusal(RefusalClause.VALIDITY, dt=40 * DAY)
    report = check_policy(log.bundle(), [POLICY])
    assert report.refusals == 7


def test_duplicate_agreements_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        check_policy(start().bundle(), [POLICY, POLICY])
