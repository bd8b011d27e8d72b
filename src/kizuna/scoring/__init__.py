"""Predictive scores: churn risk, expansion propensity and deal forecasts, calibrated and explained (docs/scores.md)."""

import os

# Before scikit-learn loads its OpenMP runtime, which reads this once: a thread that waits for work (between the
# 120 trees of a prediction, each a parallel loop over the rows) sleeps instead of spinning. Spinning threads on
# a machine whose cores are busy crawled: two threads took 2-4 times longer than one (docs/scores.md, "Threads").
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
