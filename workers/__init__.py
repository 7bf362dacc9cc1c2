"""Process entry points: the `oms` command, the Temporal worker, the dev stack."""
