"""The one error base of the store package."""


class StoreError(RuntimeError):
    """The store cannot do what was asked; the message names the offending value."""


class SnapshotConflict(StoreError):
    """Another writer published a snapshot first; retry on the new one."""


class EditConflict(StoreError):
    """Another writer changed a shared object (keys, alerts book) meanwhile; edit it again."""
