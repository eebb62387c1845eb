"""Answering stage: select evidence, compose or generate the answer, decide answerability, and verify citations."""
