"""The outer layer: the FastAPI app, settings, and the `cuadra` command line."""
