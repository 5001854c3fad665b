"""The one error base of the store package."""


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message names the offending value."""


class SnapshotConflict(StoreError):
    """Another writer published a snapshot first; retry on the new one."""
