"""fiumatch.ingest."""
