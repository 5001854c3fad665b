"""Pure spatial computation on arrays: H3 cells, point-in-polygon, nearest street, CRS.

Nothing here knows about files, settings or HTTP; arrays in, arrays out.
"""
