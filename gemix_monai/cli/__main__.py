"""``python -m gemix_monai.cli``: the ``gemix-monai`` command."""

import sys

from gemix_monai.cli import main

if __name__ == "__main__":
    sys.exit(main())
