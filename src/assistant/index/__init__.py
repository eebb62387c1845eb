"""Index stage: the Chroma store of passages and sentence vectors, its BM25 tables, and the hidden-document list."""
