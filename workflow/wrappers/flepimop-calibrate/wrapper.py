"""Snakemake wrapper: the campaign's calibrate step (the work is workflow/scripts/calibrate.py).

A wrapper, not a ``script:`` rule: Snakemake looks a script up again for every job when it
plans a DAG (1,000 runs: seconds of ``snakemake -n``), a wrapper once.
"""

__author__ = "flepiMoP developers"
__license__ = "MIT"

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "scripts"))  # noqa: F821

from calibrate import run_job  # noqa: E402

sys.exit(run_job(snakemake))  # noqa: F821
