"""The hypothesis settings every proof uses (a helper, not a test module).

Derandomized and without an example database, so CI runs the same examples every time; no
deadline, since a PostgreSQL round trip varies; fixtures are function-scoped on purpose (one
database serves all of a test's examples, reset by the test).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def proof_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
