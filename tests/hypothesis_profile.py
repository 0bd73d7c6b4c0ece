"""
Hypothesis settings for the hardening tests: in CI (C{CI} set), no example
database (a fresh checkout has none to keep) and no deadline (a 2-core CI
machine has noisy timings). Import this module before using C{@given}.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "chatsvc-ci",
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "chatsvc-dev",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("chatsvc-ci" if os.environ.get("CI") else "chatsvc-dev")
