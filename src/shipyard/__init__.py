"""shipyard: run coding agents unattended, verify their changes, and deliver them by policy."""

__version__ = "0.1.0"
