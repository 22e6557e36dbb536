"""Estimates for a plan: monthly cost (`cost`) and first-deploy duration (`durations`)."""
