"""The settle stage: whether each retained leak grows (fails) or was retained once (listed), by running again.

A leak whose holder leaves the question open is decided by a second run of
the test's protocol (a third when the second run's addition is keyed), once
per fingerprint: ``growth.Probe`` holds the first run's objects weakly
meanwhile, and ``growth.Settled`` remembers each fingerprint's answer.
"""

from __future__ import annotations

import dataclasses
import gc

import pytest

from pytest_leakhunt import census, growth
from pytest_leakhunt.check import Checker
from pytest_leakhunt.config import Settings, policy_for
from pytest_leakhunt.model import CLEAN, Leak, Outcome, TestLeaks
from pytest_leakhunt.stash import POLICY_KEY


class Settler:
    """The settle stage, and what it keeps between checks: each fingerprint's answer, the earlier leaks."""

    def __init__(
        self, settings: Settings, checker: Checker, earlier: growth.EarlierLeaks, settled: growth.Settled
    ) -> None:
        self.settings = settings
        self._checker = checker
        self._earlier = earlier
        #: each fingerprint's answer, for the whole session (the check reads it; only this stage writes it)
        self._settled = settled
        #: per check: by fingerprint, the leak a second run showed growing
        self._grown: dict[str, Leak | None] = {}

    def settle(
        self, item: pytest.Item, nextitem: pytest.Item | None, verdict: TestLeaks | None, rerun: bool
    ) -> TestLeaks | None:
        """Split a verdict's leaks into those that grow (they fail) and those retained once or earlier.

        Leaks whose holder leaves it open are decided by running the test
        once more (*rerun*: only where we run the protocol and the test
        passed), once per fingerprint; without a second run they count as
        growing. With ``--leaks-strict`` everything retained fails.
        """
        probe = self._checker.take_probe()
        try:
            if verdict is None or verdict is CLEAN or not verdict.leaks:
                return verdict
            leaks = [self._settled.apply(leak) for leak in verdict.leaks]
            if self.settings.strict:
                leaks = [dataclasses.replace(leak, retention=growth.GROWS) for leak in leaks]
            elif (
                rerun
                and probe.entries
                and any(leak.retention == growth.UNSETTLED for leak in leaks)
                and not any(leak.retention == growth.GROWS for leak in leaks)  # it fails anyway: no second run
            ):
                self._second_run(item, nextitem, probe)
            leaks = [growth.settle(leak, self._settled.retentions, self._grown) for leak in leaks]
            for fingerprint, _, _, root_ref, leaked_ref, _ in probe.entries:
                root, leaked = root_ref(), leaked_ref()
                if root is not None and (
                    self._settled.retentions.get(fingerprint) == growth.GROWS or self.settings.strict
                ):
                    self._earlier.remember([root, leaked, *gc.get_referents(root)], item.nodeid)
            root = leaked = None
        finally:
            probe.close()
            self._grown = {}
        failing = tuple(leak for leak in leaks if leak.retention == growth.GROWS)
        kept = tuple(leak for leak in leaks if leak.retention != growth.GROWS)
        if not failing and not kept and not verdict.error:
            return CLEAN
        outcome: Outcome = "failed" if failing or verdict.error else "passed"
        return dataclasses.replace(verdict, leaks=failing, retained=kept, outcome=outcome)

    def _second_run(self, item: pytest.Item, nextitem: pytest.Item | None, probe: growth.Probe) -> None:
        """Run the test's protocol again, reports dropped, and compare what it leaves with *probe*.

        Growth the second run shows only as a keyed entry (a new dict key, an
        attribute) may be a slot that every later run replaces (a registry
        keeping the first class under one name and the last under another): a
        third run tells, the same way, whether the second run's object stays.
        """
        try:
            leaks = self._run_again(item, nextitem)
            retentions = _confirmed(probe, leaks)
            entries = probe.by_fingerprint()
            shown = {
                fp: growth.shown_again(entries[fp], leaks)
                for fp, retention in retentions.items()
                if retention == growth.GROWS
            }
            doubtful = [
                fp
                for fp, leak in shown.items()
                if not entries[fp][5] and leak is not None and leak.retention != growth.GROWS
            ]
            second = self._checker.take_next_probe()
            if doubtful and second.entries:
                later = _confirmed(second, self._run_again(item, nextitem))
                for fp in doubtful:
                    if not any(
                        later.get(e[0]) == growth.GROWS and growth.same_holder(entries[fp][1], e[1])
                        for e in second.entries
                    ):
                        retentions[fp] = growth.ONCE
            # what the second run added to a growing leak is that leak too, for blaming later tests
            grows = [entries[fp][1] for fp, retention in retentions.items() if retention == growth.GROWS]
            for entry in second.entries:
                if any(growth.same_holder(name, entry[1]) for name in grows):
                    self._earlier.remember([entry[3](), entry[4]()], item.nodeid)
            entry = None  # type: ignore[assignment]
            second.close()
        finally:
            self._checker.take_next_probe().close()
        self._settled.retentions.update(retentions)
        # what grows is best shown by what the second run added: the first run also made the holder
        self._grown = {fp: leak for fp, leak in shown.items() if retentions.get(fp) == growth.GROWS}

    def _run_again(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[Leak]:
        """One more run of the test's protocol, its reports dropped: the leaks it left, unjudged."""
        policy = item.stash.get(POLICY_KEY, None) or policy_for(item, self.settings)
        return self._checker.run_again(item, nextitem, policy)


def _confirmed(probe: growth.Probe, again: list[Leak]) -> dict[str, growth.Retention]:
    """*probe*'s retentions after a run that left *again*; growth is confirmed after a full collection.

    Between windows the heap is unfrozen, but what became cyclic garbage while
    it was frozen is still there until a full collection: the value a slot
    held before the second run replaced it (a class always is a cycle) may
    still keep the first run's object, or the key of its weak-keyed entry.
    Only an answer of growth can come from that, and only then, for what is
    held through a weak key or by C state, is it paid.
    """
    retentions = probe.retentions(again, census.holds)
    grows = {fingerprint for fingerprint, retention in retentions.items() if retention == growth.GROWS}
    if grows and probe.may_hang_on_garbage(grows):
        gc.collect()
        retentions = probe.retentions(again, census.holds)
    return retentions
