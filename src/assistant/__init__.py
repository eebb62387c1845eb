"""Cited answers about co-production in health and care, from an offline index."""

from assistant.offline import enforce_offline

enforce_offline()

__version__ = "0.1.0"
