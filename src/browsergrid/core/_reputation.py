"""Worker reputation, in the manner of BOINC's adaptive replication.

Every time a quorum settles a replicated task, each worker that sent a replica is judged:
its result agreed with the accepted one (valid) or not (invalid). From that the scheduler
keeps an error-rate estimate per lasting worker identity, and decides two things:

- **trusted**: ``TRUST_AFTER`` valid results in a row. In a job with ``adaptive=True`` a
  trusted worker's result is accepted alone, except for a random spot check.
- **vouched**: ``VOUCHED_AFTER`` results that agreed with a quorum. While a vouched
  identity could replicate a task, only a group of agreeing results with a vouched member
  settles it: identities minted at will earn weight only by agreeing with vouched ones.
- **quarantined**: the error rate reached ``QUARANTINE_AT`` (from a new worker's 0.1, three
  invalid results close together). A quarantined worker gets no more tasks of any job, and
  its replicas still waiting for a quorum are thrown away.

Beside the results a quorum judged, every identity has a record of the work it finished
(``done``) and the leases it lost (``lost``: errors it reported, deadlines it passed,
connections it dropped with tasks in hand), with a loss rate kept the way BOINC keeps a
host's error rate: each loss moves it a quarter of the way to 1, each finished task takes
a tenth off. From it:

- **reliable**: it finished a job task (a welcome task proves nothing: any identity
  minted for the purpose answers one) and loses less than half the time. A task lost
  before goes next to a reliable worker when one can take it.
- **established**: reliable with ``ESTABLISHED_AFTER`` finished job tasks. Only an
  established worker's dropped connection counts against the tasks it held: tabs close.
  An error or a passed deadline counts against a task when its worker is established,
  when it is reliable and no established worker could take the task instead, or when no
  other worker at all could (``Scheduler._charges``): strangers alone cannot fail a task
  while someone with a record could run it.
- **slowed**: it holds at most ``1 - loss_rate`` of the tasks it asked for (at least one),
  as BOINC halves a failing host's daily quota and gives it back with valid results.
- **quarantined for losses**: ``LOSS_QUARANTINE_AFTER`` losses and a loss rate of
  ``LOSS_QUARANTINE_AT`` (eight losses in a row with nothing finished between), judged
  when a loss is proven the worker's: an error report counts once the task was done
  elsewhere, and is forgiven when the task fails everywhere (then the task was at fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

INITIAL_ERROR_RATE: Final = 0.1
"""A worker nobody has checked yet is assumed to be wrong one time in ten."""
VALID_DECAY: Final = 0.95
"""Each valid result multiplies the error rate by this."""
INVALID_STEP: Final = 0.1
"""Each invalid result adds this to the error rate (at most 1)."""
QUARANTINE_AT: Final = 0.4
"""An error rate this high quarantines the worker."""
TRUST_AFTER: Final = 10
"""Valid results in a row after which a worker is established (trusted)."""
VOUCHED_AFTER: Final = 3
"""Results a quorum agreed with after which an identity may vouch for a quorum."""
LOSS_STEP: Final = 0.25
"""Each lost lease moves the loss rate this share of the way to 1."""
DONE_DECAY: Final = 0.9
"""Each finished task multiplies the loss rate by this."""
UNRELIABLE_AT: Final = 0.5
"""A loss rate this high makes a worker unreliable (three losses in a row from a new one)."""
ESTABLISHED_AFTER: Final = 3
"""Finished job tasks after which a reliable worker's dropped connection counts against
the tasks it held."""
LOSS_QUARANTINE_AT: Final = 0.85
"""A loss rate this high, with ``LOSS_QUARANTINE_AFTER`` losses, quarantines the worker."""
LOSS_QUARANTINE_AFTER: Final = 8


@dataclass(slots=True, kw_only=True)
class Standing:
    """What the grid knows of one worker identity's honesty; change it through ``judge``."""

    valid: int = 0
    invalid: int = 0
    consecutive_valid: int = 0
    error_rate: float = INITIAL_ERROR_RATE
    quarantined: bool = False
    done: int = 0  # job tasks it finished with a result
    lost: int = 0  # leases it lost: error reports, passed deadlines, dropped connections
    loss_rate: float = 0.0

    @property
    def trusted(self) -> bool:
        """Established: its results may go unreplicated in adaptive jobs (spot-checked)."""
        return not self.quarantined and self.consecutive_valid >= TRUST_AFTER

    @property
    def vouched(self) -> bool:
        """Its results agreed with quorums before: while such an identity could weigh in,
        a quorum of identities without a record settles nothing (minted ones outvote no
        one)."""
        return not self.quarantined and self.valid >= VOUCHED_AFTER

    @property
    def reliable(self) -> bool:
        """It finished a job task and loses less than half the time: tasks lost before may
        go to it, and its errors and passed deadlines may count against a task."""
        return not self.quarantined and self.done > 0 and self.loss_rate < UNRELIABLE_AT

    @property
    def established(self) -> bool:
        """Reliable with a record: its dropped connection counts against the tasks it held."""
        return self.reliable and self.done >= ESTABLISHED_AFTER

    def slots(self, asked: int) -> int:
        """How many of the ``asked`` tasks at once it may hold now: fewer as it loses more."""
        if self.loss_rate <= 0.0 or asked <= 1:
            return asked
        return max(1, int(asked * (1.0 - self.loss_rate) + 0.5))

    def finished(self) -> bool:
        """Count one job task it finished with a result (never a welcome task: it would
        clean a record for free); True if its loss rate fell (it may hold more at once)."""
        self.done += 1
        if self.loss_rate == 0.0:
            return False
        self.loss_rate *= DONE_DECAY
        if self.loss_rate < 1e-3:  # a clean record again: nothing left to count down
            self.loss_rate = 0.0
        return True

    def lose(self) -> None:
        """Count one lease it lost (call ``judge_losses`` where a loss is proven its own)."""
        self.lost += 1
        self.loss_rate += (1.0 - self.loss_rate) * LOSS_STEP

    def forgive(self) -> None:
        """Take back one loss that proved the task's fault (the task failed everywhere):
        the inverse of ``lose``, exact when nothing was counted in between."""
        self.lost = max(0, self.lost - 1)
        self.loss_rate = min(1.0, max(0.0, (self.loss_rate - LOSS_STEP) / (1.0 - LOSS_STEP)))

    def judge_losses(self) -> bool:
        """After a loss proven its own: returns True if this put the worker in quarantine."""
        if (
            self.quarantined
            or self.lost < LOSS_QUARANTINE_AFTER
            or self.loss_rate < LOSS_QUARANTINE_AT - 1e-9
        ):
            return False
        self.quarantined = True
        return True

    def judge(self, agreed: bool) -> bool:
        """Count one judged result; returns True if this one put the worker in quarantine."""
        if agreed:
            self.valid += 1
            self.consecutive_valid += 1
            self.error_rate *= VALID_DECAY
            return False
        self.invalid += 1
        self.consecutive_valid = 0
        self.error_rate = min(1.0, self.error_rate + INVALID_STEP)
        if self.quarantined or self.error_rate < QUARANTINE_AT - 1e-9:
            return False
        self.quarantined = True
        return True
