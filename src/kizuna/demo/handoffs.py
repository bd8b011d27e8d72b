"""CSQL hand-offs on deals: who created a CSQL, who owns the deal, when it was handed off and answered."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from kizuna.demo import vocab
from kizuna.demo.dates import DAY_SECONDS, NONE, IntArray, weekday

STAFF = vocab.staff_emails(vocab.ACCOUNT_EXECUTIVES) + vocab.staff_emails(vocab.INSIDE_SALES)
_N_AE = len(vocab.ACCOUNT_EXECUTIVES)
# answer delays in calendar days after the hand-off (then moved off weekends): most within the 2-day SLA
_DELAYS, _DELAY_P = np.array([0, 1, 2, 3, 5, 8]), np.array([0.3, 0.3, 0.18, 0.1, 0.08, 0.04])


def _next_workday(days: IntArray) -> IntArray:
    wd = weekday(days)
    return days + np.where(wd >= 5, 7 - wd, 0)


def handoff_columns(
    csql: npt.NDArray[np.bool_], account_owner: IntArray, stage_code: IntArray, created: IntArray, closed: IntArray,
    today: int, rng: np.random.Generator,
) -> dict[str, IntArray]:  # fmt: skip
    """Per deal, codes into STAFF (owner, creator) and Tokyo wall-clock seconds (handed off, accepted, rejected).

    A CSQL deal is created by an inside-sales rep. On an account with an account executive it is handed off
    to them within hours and answered after a few days (rejected by a tenth when lost or still qualifying,
    unanswered by a quarter of those still qualifying); otherwise the rep keeps it. Other deals get blanks.
    """
    n = len(csql)
    creator = np.where(csql, _N_AE + rng.integers(0, len(vocab.INSIDE_SALES), n), NONE)
    owned = csql & (account_owner >= 0)
    owner = np.where(owned, account_owner, creator)
    handed = np.where(owned, created + rng.integers(1800, 6 * 3600, n), NONE)
    day = np.maximum(handed, 0) // DAY_SECONDS
    answer_day = _next_workday(day + rng.choice(_DELAYS, n, p=_DELAY_P))
    answered = answer_day * DAY_SECONDS + 9 * 3600 + rng.integers(0, 10 * 3600, n)
    answered = np.maximum(answered, handed + 600)
    answered = np.where(closed >= 0, np.minimum(answered, np.maximum(closed - 60, handed + 60)), answered)
    u = rng.random(n)
    qualifying, lost = stage_code == 0, stage_code == 4
    rejected = owned & ((lost & (u < 0.3)) | (qualifying & (u < 0.1)))
    unanswered = owned & qualifying & (u >= 0.1) & (u < 0.35)
    in_time = answered < today * DAY_SECONDS
    accepted = owned & ~rejected & ~unanswered & in_time
    return {
        "owner": owner,
        "creator": creator,
        "handed": np.where(handed < today * DAY_SECONDS, handed, NONE),
        "accepted": np.where(accepted, answered, NONE),
        "rejected": np.where(rejected & in_time, answered, NONE),
    }
