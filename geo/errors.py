"""The one error base of the geo package."""


class GeoError(ValueError):
    """A spatial computation was given input it cannot work with."""


class ParameterError(GeoError):
    """A parameter asks for more than a computation may do; names it and its value."""

    def __init__(self, parameter: str, value: object, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value
