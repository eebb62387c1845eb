"""Faces: the command line, the Gradio UI and the exports, each a client of the one service."""
