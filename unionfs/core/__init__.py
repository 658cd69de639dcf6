"""The overlay's core: layers, the sidecar, lookup, copy-up and the namespace operations."""
