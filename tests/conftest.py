"""Hypothesis settings of the whole suite: no per-example deadline and no "too slow" health
check. Both measure wall time, so on a loaded machine they fail tests whose properties hold;
a hang is what the hang guards (tests/_hang.py) and the fuzz harness's timeouts catch, and
speed is measured in bench/. Tests that set their own ``@settings`` keep these for what they
do not set."""

from hypothesis import HealthCheck, settings

settings.register_profile("edgelearn", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("edgelearn")
