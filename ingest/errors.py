"""The one error base of the ingest package."""


class IngestError(ValueError):
    """An input file or profile cannot be ingested; the message names what is wrong."""
