"""regctl: operator tool for the Config Service's service registry.

This module only carries the version; it imports nothing from third parties so
that ``regctl --version`` stays fast.
"""

__version__ = "0.1.0"
