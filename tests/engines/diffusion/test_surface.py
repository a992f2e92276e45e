"""The diffusion package's surface: importing it (and its CLI) never loads torch; exports are sorted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tastemaker.engines.diffusion as diffusion


def test_importing_the_package_and_cli_never_imports_torch() -> None:
    code = (
        "import sys, tastemaker.engines.diffusion, tastemaker.cli.diffusion;"
        "from tastemaker.engines.diffusion import create_diffusion_engine, ModelFilesError;"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'torch imported'"
    )
    src = Path(__file__).resolve().parents[3] / "src"  # this checkout, not whatever is installed
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(src)})


def test_all_is_sorted_and_errors_fit_the_hierarchy() -> None:
    from tastemaker.errors import InputError

    assert diffusion.__all__ == sorted(diffusion.__all__)
    assert issubclass(diffusion.ModelFilesError, InputError)
    assert diffusion.ModelFilesError.code == "model_files_invalid" and diffusion.ModelFilesError.exit_code == 2
