"""Deployment: TorchScript and ONNX export (with int8 quantisation and the metadata sherpa-onnx
reads), and running the exported ONNX files (:mod:`icefall_lite.export.onnx_model`)."""
