"""One exception family, so the CLI can print a clear message instead of a traceback wall."""


class EdgeoptError(Exception):
    """Base for every error edgeopt raises on purpose; its message is meant for the user."""


class DataUnavailable(EdgeoptError):
    """A data set is not on this machine; the message says what to install."""


class BackendUnavailable(EdgeoptError):
    """An optional backend (TensorRT, CUDA, an OpenVINO device) is missing; the message says what to install."""


class CheckpointError(EdgeoptError):
    """A model file is corrupt, truncated or does not match its manifest."""


class InvalidInput(EdgeoptError):
    """User input (a file, a tensor, a config value) is not what was expected."""


class ExportError(EdgeoptError):
    """A model could not be exported; the message names the module/op and the exporter."""


class ParityError(EdgeoptError):
    """An exported or optimized artifact disagrees with its parent beyond tolerance."""
