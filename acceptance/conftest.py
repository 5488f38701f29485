"""Real-data checks: run the scripts on the real files in SHARED_DATA (../shared/data).

These never skip: without the data they fail, saying where they looked.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data():
    folder = Path(os.environ.get("SHARED_DATA", PROJECT.parent / "shared" / "data"))
    assert folder.is_dir(), f"no real data at {folder}: set SHARED_DATA to ../shared/data"
    return folder


def run_script(*args, timeout=1800):
    return subprocess.run([sys.executable, *map(str, args)], cwd=PROJECT, capture_output=True,
                          text=True, timeout=timeout)
