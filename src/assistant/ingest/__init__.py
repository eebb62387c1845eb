"""Ingest stage: load documents (PDF, DOCX, HTML, Markdown, text), find their reference sections, and split them into passages."""
