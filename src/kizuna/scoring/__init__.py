"""Predictive scores: churn risk, expansion propensity and deal forecasts, calibrated and explained (docs/scores.md)."""
