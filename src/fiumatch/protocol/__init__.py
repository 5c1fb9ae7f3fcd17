"""fiumatch.protocol."""
