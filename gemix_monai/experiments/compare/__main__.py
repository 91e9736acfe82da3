"""``python -m gemix_monai.experiments.compare --cell-dir DIR --out OUT [--verbose]``: run one prepared cell (what a
``--jobs`` worker process does; :class:`~gemix_monai.experiments.compare.runner.SubprocessExecutor` starts it)."""

import argparse
import sys
from pathlib import Path

from gemix_monai.experiments.compare import ALL_RUNNERS
from gemix_monai.experiments.compare.runner import run_cell_dir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="run one prepared compare cell (the --jobs worker)")
    p.add_argument("--cell-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    run_cell_dir(Path(a.cell_dir), Path(a.out), ALL_RUNNERS, quiet=not a.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
