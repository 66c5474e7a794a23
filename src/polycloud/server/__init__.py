"""The control-plane process: state store, reconciler, API and the gateway child, for one home."""
