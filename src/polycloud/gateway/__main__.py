"""`python -m polycloud.gateway`: see `polycloud.gateway.running`."""

import sys

from polycloud.gateway.running import main

sys.exit(main())
