"""Third-party log lines that say nothing an edgeopt user can act on."""
from __future__ import annotations

import logging

NOISY_LOGGERS = {
    "torchao": "warns on import that its CUDA kernels cannot load into a CPU build of torch",
    "torch.utils._pytree": "torchao registers enums with a deprecated call, warned once per enum on import",
}


def quiet_library_logs() -> None:
    """Show only errors from these libraries (ExecuTorch imports torchao); called by each edgeopt entry point."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
