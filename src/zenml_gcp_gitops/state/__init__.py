"""A deployment's state beside Pulumi's: its record, the lease that serialises runs, and the guard against replacing stateful resources."""
