"""HTTP API: starts, signals and queries order workflows; reads the read model."""
