"""Temporal activities: every piece of I/O an order needs.

Each activity is idempotent: it may run more than once for one step (a retry
after a timeout, a worker crash) and must leave the same result as running
once. Business failures are raised as `ApplicationError` with a type from
`models.errors.FailureType` and `non_retryable=True`; anything else is retried.
"""
