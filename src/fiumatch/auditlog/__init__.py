"""fiumatch.auditlog."""
