"""The made-up values the offline plan's mocks compute, and render's placeholder check finds.

Kept apart from `plan.py` so that `gitops/tree.py` can recognise them without importing
the plan (which imports render).
"""

from __future__ import annotations

# Fake computed values, all from documentation ranges (RFC 5737) or obviously fake.
MOCK_PROJECT_NUMBER = "123456789012"
MOCK_INGRESS_IP = "203.0.113.10"
MOCK_SQL_PRIVATE_IP = "198.51.100.3"
MOCK_PSA_ADDRESS = "198.51.100.0"  # the range the mock instance IP above is in
# Name servers of a zone the stack creates (Cloud DNS assigns real ones at deploy).
MOCK_NAME_SERVERS = ["ns-mock-a.example.net.", "ns-mock-b.example.net."]
FAKE_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "TU9DSyBDRVJUSUZJQ0FURSBGT1IgUExBTiAtLW9mZmxpbmUgT05MWQ==\n"
    "-----END CERTIFICATE-----\n"
)
