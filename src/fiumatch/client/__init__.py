"""fiumatch.client."""
