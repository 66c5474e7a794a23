"""`python -m polycloud.serving`: run one model replica (see `polycloud.serving.cli`)."""

import os
import sys

from polycloud.serving.cli import main

os.umask(0o077)  # what it writes in its home (certificates, logs, traces) is its user's alone

if __name__ == "__main__":
    sys.exit(main())
