"""``python -m gemix_monai.cli``: the ``gemix-monai`` command."""

import sys

if __name__ == "__main__":
    try:  # Ctrl-C while the libraries still load is an interrupt too (exit 130), not a death by SIGINT
        from gemix_monai.cli import main
    except KeyboardInterrupt:
        print("gemix-monai: interrupted while starting; nothing was written", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
