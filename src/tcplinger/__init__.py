"""tcplinger: find, explain and end lingering TCP connections."""

__version__ = "0.1.0"
