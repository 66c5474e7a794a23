"""`python -m polycloud.serving`: run one model replica (see `polycloud.serving.cli`)."""

import sys

from polycloud.serving.cli import main

if __name__ == "__main__":
    sys.exit(main())
