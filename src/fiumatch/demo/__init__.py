"""fiumatch.demo: three FIU nodes on loopback, end to end (``fiumatch demo``)."""
