"""Offline evaluation of retrieval, citations and abstention."""
