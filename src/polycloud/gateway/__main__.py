"""`python -m polycloud.gateway`: see `polycloud.gateway.running`."""

import os
import sys

from polycloud.gateway.running import main

os.umask(0o077)  # what it writes in its home (certificates, logs, traces) is its user's alone

sys.exit(main())
