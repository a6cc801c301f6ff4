"""Worker reputation, in the manner of BOINC's adaptive replication.

Every time a quorum settles a replicated task, each worker that sent a replica is judged:
its result agreed with the accepted one (valid) or not (invalid). From that the scheduler
keeps an error-rate estimate per lasting worker identity, and decides two things:

- **trusted**: ``TRUST_AFTER`` valid results in a row. In a job with ``adaptive=True`` a
  trusted worker's result is accepted alone, except for a random spot check.
- **quarantined**: the error rate reached ``QUARANTINE_AT`` (from a new worker's 0.1, three
  invalid results close together). A quarantined worker gets no more tasks of any job, and
  its replicas still waiting for a quorum are thrown away.
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


@dataclass(slots=True, kw_only=True)
class Standing:
    """What the grid knows of one worker identity's honesty; change it through ``judge``."""

    valid: int = 0
    invalid: int = 0
    consecutive_valid: int = 0
    error_rate: float = INITIAL_ERROR_RATE
    quarantined: bool = False

    @property
    def trusted(self) -> bool:
        """Established: its results may go unreplicated in adaptive jobs (spot-checked)."""
        return not self.quarantined and self.consecutive_valid >= TRUST_AFTER

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
