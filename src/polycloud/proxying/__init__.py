"""HTTP/1.1 plumbing shared by everything that relays requests (the gateway, the replica sidecar):
pooled keep-alive upstream connections with whole and streamed answers."""
