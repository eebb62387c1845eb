"""Models, loaded lazily once per process: the embedder, the ONNX query encoder, the cross-encoder, the language-model backends and their prompt files."""
