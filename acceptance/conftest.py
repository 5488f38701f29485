"""Real-data checks: run the scripts on the real files in SHARED_DATA (../shared/data).

These never skip: without the data they fail, saying where they looked. The scripts run in
this process (tests/in_process.py: as `python script.py ...` would, without paying
TensorFlow's import for each).
"""

import os
from pathlib import Path

import pytest

from tests.in_process import PROJECT, fresh_process_state, run_script  # noqa: F401


@pytest.fixture(scope="session")
def shared_data():
    folder = Path(os.environ.get("SHARED_DATA", PROJECT.parent / "shared" / "data"))
    assert folder.is_dir(), f"no real data at {folder}: set SHARED_DATA to ../shared/data"
    return folder
