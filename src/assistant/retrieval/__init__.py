"""Retrieval stage: turn a question (and its conversation) into a query, fuse dense and BM25 hits, and apply filters."""
