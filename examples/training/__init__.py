"""A breast-cancer classifier trained, tracked, gated and registered with ZenML."""
