"""The deploy phases, in order: preflight -> infra -> gitops -> register -> ci."""

PHASE_ORDER = ("preflight", "infra", "gitops", "register", "ci")
