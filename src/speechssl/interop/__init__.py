"""Checkpoints in and out of speechssl: graphs (ONNX, ``torch.export``) and other toolkits' formats."""
