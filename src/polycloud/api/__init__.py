"""The control-plane HTTP API under /api/v1: thin FastAPI routers over `polycloud.services`."""
