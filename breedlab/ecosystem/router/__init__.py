"""Routing: which model answers a query. Policies are plug-ins, registered by name on import.

``base`` holds the policy contract and the name table; ``linear``, ``head`` and ``hybrid`` are
the built-in kinds, imported here so the table knows them wherever a policy is loaded.
"""

from breedlab.ecosystem.router import head, hybrid, linear  # noqa: F401  (register the built-in kinds)
