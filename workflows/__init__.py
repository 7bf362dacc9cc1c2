"""Temporal workflows: deterministic code that only imports models/.

Activities are called by name so that their implementations (database,
gateways) never enter the workflow sandbox.
"""
