"""The public release as a server keeps and applies it.

:mod:`disclosure` decides what is published (a pure core: arrays in, arrays out); this
package feeds it the store's monthly counts, keeps the published tables per snapshot
(:mod:`publication.tables`), and answers a request with the figures its role may see
(:mod:`publication.figures`). It knows neither HTTP nor SQL: the store runs the queries,
``api/`` parses and renders.
"""
