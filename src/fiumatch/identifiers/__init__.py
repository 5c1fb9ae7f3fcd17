"""fiumatch.identifiers."""
