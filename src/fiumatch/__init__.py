"""fiumatch: privacy-preserving matching between Financial Intelligence Units.

The package is a pure core (``protocol``, ``identifiers``, ``auditlog``) wrapped by thin
shells (``ingest``, ``store``, ``node``, ``client``, ``cli``). Arrows point inward: the core
never imports a shell, never opens a socket or a file, never reads a clock and never draws
global randomness; callers pass those in.
"""

__version__ = "0.1.0"
