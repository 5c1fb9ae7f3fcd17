"""fiumatch.cli."""
