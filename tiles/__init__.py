"""Tile math, heatmap rendering, MVT encoding and TileJSON (arrays in, bytes out).

Never opens the store: ``api`` queries ``store`` and hands arrays to this package.
"""
