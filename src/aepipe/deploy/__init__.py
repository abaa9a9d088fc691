"""Deployment: the detector exported as ONNX, scoring with it (onnxruntime alone), the `aepipe` command."""
