"""dbt: running the build, recording its outcome, and its failures in plain words."""
