"""The web dashboard's static assets (served by the control plane at `/`; see `polycloud.api.web`).

The page is plain HTML, CSS and ES modules; the libraries under `static/vendor` are committed builds
(see `static/vendor/README.md`), so installing polycloud needs no Node.js.
"""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["STATIC_DIR"]
