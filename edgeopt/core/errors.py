"""One exception family, so the CLI can print a clear message instead of a traceback wall."""


class EdgeoptError(Exception):
    """Base for every error edgeopt raises on purpose; its message is meant for the user."""


class DataUnavailable(EdgeoptError):
    """A data set is not on this machine; the message says what to install."""


class BackendUnavailable(EdgeoptError):
    """An optional backend (TensorRT, CUDA, an OpenVINO device) is missing; the message says what to install."""


class CheckpointError(EdgeoptError):
    """A model file is corrupt, truncated, unsafe to unpickle or does not match its manifest."""

    @classmethod
    def pickled_objects(cls, path: object) -> "CheckpointError":
        """torch.load(weights_only=True) refused a file; say why and how to save one edgeopt loads (never
        torch's advice to load it with weights_only=False, which runs whatever the file says)."""
        return cls(f"{path}: holds pickled Python objects that edgeopt will not unpickle (unpickling can run "
                   "arbitrary code; edgeopt loads tensors only). Save a plain state_dict instead: "
                   "`torch.save(model.state_dict(), path)`, or for a Hugging Face model "
                   "`model.save_pretrained(directory)` (safetensors).")


class UntrustedCode(EdgeoptError):
    """An artifact names code to run (a module factory) and the user did not opt in (`--trust-code`)."""


class InvalidInput(EdgeoptError):
    """User input (a file, a tensor, a config value) is not what was expected."""


class ExportError(EdgeoptError):
    """A model could not be exported; the message names the module/op and the exporter."""


class ParityError(EdgeoptError):
    """An exported or optimized artifact disagrees with its parent beyond tolerance."""
