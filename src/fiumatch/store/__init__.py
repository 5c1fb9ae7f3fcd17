"""fiumatch.store."""
