"""The command-line tests' spec folder: a spec and the real task module it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import SPEC, TASKS


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "spec_tasks.py").write_text(TASKS)
    (tmp_path / "spec.yaml").write_text(SPEC)
    return tmp_path
