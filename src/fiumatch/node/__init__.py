"""fiumatch.node."""
