"""Where output is not a terminal (CI logs), long steps print one plain line per step with the elapsed time."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from edgeopt.core.progress import progress_bars

LINE = r"\[\s*\d+\.\ds\] "


def test_a_prune_with_fine_tuning_logs_a_timed_line_per_epoch(tmp_path):
    command = [str(Path(sys.executable).with_name("edgeopt")), "prune", "cnn", "--ratio", "0.5", "--finetune-epochs", "2",
               "--max-train-samples", "256", "--val-samples", "128", "--eval-samples", "128",
               "-o", str(tmp_path / "pruned")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)  # pipes, no tty
    assert done.returncode == 0, done.stderr
    epochs = re.findall(LINE + r"epoch (\d)/2 (\d+)/(\d+): train loss \d\.\d+, val accuracy \d+\.\d\d%$",
                        done.stderr, re.MULTILINE)
    assert [(e[0], e[1] == e[2]) for e in epochs] == [("1", True), ("2", True)], done.stderr
    assert "\x1b[" not in done.stderr and "━" not in done.stderr  # no bar drawing in a log


def test_many_small_steps_give_one_line_per_task_not_per_step(cnn_artifact, fashion):
    from edgeopt.core.models.zoo import load_module, preprocessor_of
    from edgeopt.core.train import TrainConfig, fit

    log = io.StringIO()
    config = TrainConfig(epochs=1, batch_size=16, max_train_samples=160)
    with progress_bars(stream=log) as progress:
        fit(load_module(cnn_artifact), preprocessor_of(cnn_artifact), fashion.train, fashion.val.subset(64), config,
            progress=progress)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and re.match(LINE + r"epoch 1/1 11/11: train loss", lines[0]), lines


def _read_everything(master: int) -> str:
    """A pty hands its bytes over in chunks: read until nothing more arrives."""
    import os
    import select

    chunks = []
    while select.select([master], [], [], 0.5)[0]:
        chunks.append(os.read(master, 1 << 16))
    return b"".join(chunks).decode()


def test_a_terminal_keeps_the_rich_bars():
    import os
    import pty

    master, replica = pty.openpty()
    try:
        with open(replica, "w", closefd=False) as terminal, progress_bars(stream=terminal) as progress:
            advance = progress("build + verify", 2)
            advance("export(onnx)")
            advance()
        drawn = _read_everything(master)
    finally:
        os.close(master)
        os.close(replica)
    assert "━" in drawn and "2/2" in drawn and not re.search(LINE, drawn)
