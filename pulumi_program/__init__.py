"""The Pulumi program for the GCP side of a zenml-gcp-gitops deployment.

`program.build(cfg)` registers every resource and exports the `InfraOutputs` keys. The CLI
runs it inline (Automation API) or under mocks (`plan --offline`); `__main__.py` runs the
same program under the Pulumi CLI. Kept import-free so importing the package stays cheap.
"""
