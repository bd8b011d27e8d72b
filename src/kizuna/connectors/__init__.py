"""Connectors: pull raw tables from APIs and databases (HubSpot, Stripe, PostgreSQL) instead of files.

Every connector lands the same contract tables as the file source, through the same parser and the same
gate, so nothing downstream cares where data came from. The pieces:

- `routing`: which source feeds which raw table (a YAML file plus KIZUNA_TABLE_SOURCES).
- `base`: the `Connector` protocol and the `ChangeSink` a pull writes its records and deletions into.
- `state`: cursors and the per-table mirror of pulled records, staged with the load (by kizuna.sources.pulls)
  and committed only when the gate publishes it, so a failed or interrupted pull leaves the previous state whole.
- `registry`: source name -> connector.
"""
