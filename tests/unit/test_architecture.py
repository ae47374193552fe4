"""The import contracts in pyproject.toml ([tool.importlinter]) hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def lint_imports() -> str:
    beside_python = Path(sys.executable).with_name("lint-imports")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("lint-imports")
    assert found, "lint-imports not found: install the dev extras (import-linter)"
    return found


def test_import_contracts_are_kept() -> None:
    assert (REPO_ROOT / "pyproject.toml").is_file()
    result = subprocess.run(
        [lint_imports(), "--no-cache", "--no-logo"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"lint-imports exited {result.returncode}:\n{output}"
    assert "Contracts: 2 kept, 0 broken." in output, output
