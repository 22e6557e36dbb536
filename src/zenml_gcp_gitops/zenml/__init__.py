"""Everything that talks to a ZenML server: the session, the stack applier (its checks before
any write, its writes, its secrets) and the CI account. zenml itself is imported inside the
functions (it is slow to import)."""
