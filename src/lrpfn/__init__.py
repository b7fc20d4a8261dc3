"""lrpfn: prior-data fitted networks for in-context linear regression."""

__version__ = "0.1.0"
