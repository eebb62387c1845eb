"""The index's one error type, importable without loading Chroma or numpy."""


class IndexMissing(Exception):
    """No complete index exists yet (or the store that holds it cannot be reached)."""
