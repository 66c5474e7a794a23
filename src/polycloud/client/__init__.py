"""A typed HTTP client of the control-plane API, and finding (or starting) the control plane."""
