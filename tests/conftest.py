import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HRM_SHARED_DIR", REPO_ROOT.parent / "shared"))
POLYGLOT_BUNDLE = Path(os.environ.get("HRM_POLYGLOT_BUNDLE", SHARED / "mirrors" / "polyglot-benchmark.bundle"))


def _require(condition: bool, why: str) -> None:
    # On CI a missing tool is a set-up bug, so fail; on a developer machine, skip with the reason.
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def sandbox():
    from resources.sandbox import Sandbox

    _require(shutil.which("bwrap") is not None, "bubblewrap missing: run scripts/setup.sh as root")
    return Sandbox(timeout_s=30, concurrency=2)


@pytest.fixture(scope="session")
def polyglot_bundle() -> Path:
    _require(POLYGLOT_BUNDLE.exists(), f"polyglot bundle not found at {POLYGLOT_BUNDLE}")
    return POLYGLOT_BUNDLE
