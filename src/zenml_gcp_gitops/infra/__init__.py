"""Driving Pulumi: the CLI (find, install, version policy) and the stack's backend settings.

Below the phases: `phases/preflight.py` and `phases/infra.py` both use it, neither imports
the other.
"""
