"""Prefect flows: wiring of kizuna library calls into tasks, nothing else."""
