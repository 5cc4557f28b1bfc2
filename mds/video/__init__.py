"""Video probing and frame sampling (PyAV), shared by every model."""
