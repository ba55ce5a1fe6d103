import os

from hypothesis import HealthCheck, settings

# CI runs the same examples every time (a red build is reproducible); locally hypothesis
# explores new ones on each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
