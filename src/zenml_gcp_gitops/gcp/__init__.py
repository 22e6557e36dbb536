"""Google Cloud: the API clients preflight and operations use, their errors, Secret Manager, Cloud DNS, key versions and audit configs."""
