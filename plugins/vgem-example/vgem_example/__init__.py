"""A minimal vgem plugin package: one plugin of each kind, registered in pyproject.toml.

Nothing is imported here: vgem imports each entry point's module only when
that plugin is listed or used, so a plugin package stays cheap to discover.
"""

__version__ = "0.1.0"
