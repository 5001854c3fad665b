"""The one error base of the geo package."""


class GeoError(ValueError):
    """A spatial computation was given input it cannot work with."""
