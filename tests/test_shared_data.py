"""The `shared_data` fixture: a missing real-data folder skips a test locally and fails it under CI=true.

Runs the repository's own conftest in a throw-away pytest session (pytester), placed where ../shared/data
does not exist, so the fixture's real code path is the one tested.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def session_without_shared(pytester):
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makepyfile(test_real="def test_reads(shared_data):\n    assert (shared_data / 'x.h5ad').is_file()\n")
    assert not (pytester.path.parents[1] / "shared" / "data").exists()  # where the copied conftest looks
    return pytester


@pytest.mark.parametrize("ci, outcome", [(None, "skipped"), ("false", "skipped"), ("true", "errors")])
def test_missing_shared_folder_skips_locally_and_fails_in_ci(session_without_shared, monkeypatch, ci, outcome):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = session_without_shared.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(**{outcome: 1})  # a fixture that fails is an error of the test's setup: the run fails
    assert (result.ret != 0) == (outcome == "errors")
    result.stdout.fnmatch_lines(["*real-data folder *shared/data is absent*" + ("CI=true requires it*" if ci == "true" else "")])
