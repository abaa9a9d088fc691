"""Deployment: the detector exported as ONNX, scoring with it (onnxruntime alone), a threshold set
on site, the `aepipe` command."""
