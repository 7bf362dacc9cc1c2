"""Pydantic contracts shared by the API, the workflows and the activities.

Nothing here does I/O, so workflows can import it inside the sandbox.
"""
