"""Repository-wide pytest glue; subdirectories keep their own fixtures in their own conftest.py."""

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # item.rep_setup / rep_call / rep_teardown: lets fixtures save artefacts only for failing tests.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
