"""Trust: a step never deletes what edgeopt did not make, a manifest cannot point outside its artifact or run
code without consent, and no checkpoint is unpickled into code."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeopt.core.artifacts import MANIFEST, Artifact, output_directory
from edgeopt.core.errors import CheckpointError, InvalidInput, UntrustedCode
from edgeopt.core.hashing import sha256_tree
from edgeopt.core.models import load_state_dict, load_torch_model
from edgeopt.core.models.bert import BertClassifier, minilm_path
from edgeopt.core.models.zoo import load_module
from edgeopt.core.paths import BUNDLED_WEIGHTS_DIR
from edgeopt.export import export_artifact
from edgeopt.optimize import PruneConfig, QuantizeConfig, prune, quantize
from test_cli_export import main_error

TORCH_HINT = "weights_only set to False"


def tree(directory: Path) -> dict[str, str]:
    """Every file under `directory` with its hash: 'left exactly as it was' made checkable."""
    return {str(p.relative_to(directory)): sha256_tree(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def siblings(directory: Path) -> list[str]:
    """Staging or set-aside directories a step left beside its output."""
    return sorted(p.name for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}."))


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory, cnn_artifact):
    return export_artifact(cnn_artifact, "onnx", tmp_path_factory.mktemp("safety") / "cnn-onnx", verify=False)


# ---------------------------------------------------------------- nothing lost


def test_a_step_refuses_a_directory_edgeopt_did_not_make(tmp_path, monkeypatch, cnn_artifact):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("years of it")
    with pytest.raises(InvalidInput, match="is not an edgeopt artifact"):
        prune(cnn_artifact, PruneConfig(), work, force=True)
    err = main_error(monkeypatch, "prune", "cnn", "-o", str(work), "--force")
    assert str(work) in err and "not an edgeopt artifact" in err
    assert tree(work) == {"thesis.tex": sha256_tree(work / "thesis.tex")}
    assert siblings(work) == []


def test_an_existing_artifact_is_replaced_only_with_force(tmp_path, monkeypatch, cnn_artifact, cnn_onnx):
    out = tmp_path / "int8"
    first = quantize(cnn_onnx, QuantizeConfig(mode="dynamic", eval_samples=64, verify=False), out)
    before = tree(out)
    with pytest.raises(InvalidInput, match="already holds an edgeopt artifact; pass --force"):
        quantize(cnn_onnx, QuantizeConfig(mode="dynamic", eval_samples=64, verify=False), out)
    err = main_error(monkeypatch, "quantize", str(cnn_onnx.path), "--mode", "dynamic", "-o", str(out))
    assert str(out) in err and "--force" in err
    assert tree(out) == before

    (out / "stale.txt").write_text("from the replaced artifact")
    second = quantize(cnn_onnx, QuantizeConfig(mode="fp16", eval_samples=64, verify=False), out, force=True)
    assert second.path == out and Artifact.load(out).precision == "fp16" != first.precision
    assert not (out / "stale.txt").exists()
    assert siblings(out) == []


def test_the_output_may_not_be_the_source_or_inside_it(tmp_path, cnn_artifact):
    source = tmp_path / "cnn"
    shutil.copytree(cnn_artifact.path, source)
    artifact = Artifact.load(source)
    before = tree(source)
    for out in (source, source / "pruned", tmp_path):
        with pytest.raises(InvalidInput, match="would overwrite the source artifact"):
            prune(artifact, PruneConfig(), out, force=True)
    assert tree(source) == before


def test_a_failed_step_leaves_the_destination_as_it_was(tmp_path, cnn_onnx):
    out = tmp_path / "int8"
    quantize(cnn_onnx, QuantizeConfig(mode="dynamic", eval_samples=64, verify=False), out)
    before = tree(out)
    bad = tmp_path / "calibration.npz"
    np.savez(bad, wrong_name=np.zeros((4, 1, 28, 28), np.float32))
    with pytest.raises(InvalidInput, match="calibration inputs"):
        quantize(cnn_onnx, QuantizeConfig(mode="static", calibration_data=bad, verify=False), out, force=True)
    assert tree(out) == before
    assert siblings(out) == []

    with pytest.raises(KeyboardInterrupt):  # interrupted half-way: still nothing half-written
        with output_directory(out, force=True) as staging:
            (staging / MANIFEST).write_text("{}")
            raise KeyboardInterrupt
    assert tree(out) == before
    assert siblings(out) == []


def test_onnx_tools_leave_the_working_directory_empty(tmp_path, monkeypatch, cnn_artifact):
    """Export and quantize with output paths relative to the working directory (as `edgeopt run` gives them):
    the tools run in a scratch directory, yet read and write the user's paths, and leave only those."""
    monkeypatch.chdir(tmp_path)
    onnx_artifact = export_artifact(cnn_artifact, "onnx", Path("out/onnx"), verify=False)
    quantized = quantize(Artifact.load(Path("out/onnx")), QuantizeConfig(mode="static", samples=16, eval_samples=64),
                         Path("out/int8"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["int8", "onnx"]
    assert Artifact.load(quantized.path).parent == onnx_artifact.sha256


@pytest.mark.parametrize("name", ["../outside.pt", "/etc/passwd", "link/model.pt", "bundle"])
def test_manifest_file_names_cannot_leave_the_artifact(tmp_path, cnn_artifact, name):
    copy = tmp_path / "cnn"
    shutil.copytree(cnn_artifact.path, copy)
    (tmp_path / "outside.pt").write_bytes((copy / "model.pt").read_bytes())
    (copy / "link").symlink_to(tmp_path)
    (copy / "bundle").mkdir()
    (copy / "bundle" / "model.pt").symlink_to(tmp_path / "outside.pt")  # a model directory reaching out
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["model_file"] = name
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=f"file name '{name}' points outside the artifact directory"):
        Artifact.load(copy, verify=False)


def test_preprocessing_file_names_cannot_leave_the_artifact(tmp_path, lstm_artifact):
    copy = tmp_path / "lstm"
    shutil.copytree(lstm_artifact.path, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["preprocess"]["vocab_file"] = "../../vocab.json"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="'../../vocab.json' points outside"):
        Artifact.load(copy)


# ---------------------------------------------------------------- no code run without consent


@pytest.fixture
def factory_artifact(tmp_path, cnn_artifact):
    """A torch artifact whose manifest names a module factory in a package of its own; calling the factory
    leaves a marker file, so a test sees whether the code ran."""
    package = f"userfactory_{os.getpid()}_{tmp_path.name}"
    code = tmp_path / "code"
    (code / package).mkdir(parents=True)
    (code / package / "__init__.py").write_text(
        "from pathlib import Path\n"
        "from edgeopt.core.models.cnn import CNNModel\n\n"
        "def make(**kwargs):\n"
        f"    Path({str(tmp_path / 'factory-ran')!r}).touch()\n"
        "    return CNNModel(**kwargs)\n")
    artifact = Artifact.load(cnn_artifact.path)
    copy = tmp_path / "user-cnn"
    shutil.copytree(artifact.path, copy)
    artifact.path = copy
    artifact.arch = {"builder": "factory", "factory": f"{package}:make",
                     "kwargs": {"num_classes": 10}, "path": str(code)}
    artifact.save()
    yield copy
    sys.modules.pop(package, None)
    if str(code) in sys.path:
        sys.path.remove(str(code))


def test_an_artifact_naming_code_runs_it_only_with_consent(tmp_path, monkeypatch, factory_artifact):
    marker = tmp_path / "factory-ran"
    artifact = Artifact.load(factory_artifact)
    with pytest.raises(UntrustedCode) as error:
        load_module(artifact)
    message = str(error.value)
    assert artifact.arch["factory"] in message and artifact.arch["path"] in message and "--trust-code" in message
    for command in (["zoo", "eval", str(factory_artifact)],
                    ["export", str(factory_artifact), "-f", "onnx", "-o", str(tmp_path / "onnx")],
                    ["prune", str(factory_artifact), "-o", str(tmp_path / "pruned")],
                    ["predict", str(factory_artifact), "--sample", "0", "--runtime", "torch"]):
        err = main_error(monkeypatch, *command)
        assert artifact.arch["factory"] in err and "--trust-code" in err
    assert not marker.exists() and str(tmp_path / "code") not in sys.path

    model = load_module(Artifact.load(factory_artifact, trust_code=True))
    assert marker.exists() and model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_consent_travels_to_derived_artifacts(tmp_path, factory_artifact):
    exported = export_artifact(Artifact.load(factory_artifact, trust_code=True), "onnx", tmp_path / "onnx")
    assert exported.metrics["parity"]["ok"] and (tmp_path / "factory-ran").exists()


def test_a_tampered_manifest_is_refused(tmp_path, factory_artifact):
    manifest = json.loads((factory_artifact / MANIFEST).read_text())
    manifest["arch"]["factory"] = "os:system"
    (factory_artifact / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        Artifact.load(factory_artifact, trust_code=True)


def test_manifests_from_before_the_checksum_covered_them(tmp_path, cnn_artifact, factory_artifact):
    """Still load when they name no code (the user cache of an earlier version); otherwise they are refused."""
    for directory in (shutil.copytree(cnn_artifact.path, tmp_path / "cnn"), factory_artifact):
        manifest = json.loads((directory / MANIFEST).read_text())
        manifest["sha256"] = Artifact.load(directory).model_hash()
        (directory / MANIFEST).write_text(json.dumps(manifest))
    assert Artifact.load(tmp_path / "cnn").legacy()
    with pytest.raises(CheckpointError, match="does not match the manifest"):
        Artifact.load(factory_artifact, trust_code=True)


@pytest.mark.parametrize("name", ["cnn", "resnet", "lstm"])
def test_shipped_zoo_manifests_are_covered_by_their_checksum(name):
    artifact = Artifact.load(BUNDLED_WEIGHTS_DIR / name)
    assert artifact.sha256 == artifact.content_hash() and not artifact.legacy()


# ---------------------------------------------------------------- no checkpoint unpickled into code


class Payload:
    """Unpickling this would run a shell command written by the checkpoint's author."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def refused(error: pytest.ExceptionInfo, path: Path) -> bool:
    message = str(error.value)
    return (str(path) in message and "pickled Python objects that edgeopt will not unpickle" in message
            and "torch.save(model.state_dict(), path)" in message and TORCH_HINT not in message)


def test_a_pickled_artifact_checkpoint_is_refused(tmp_path, cnn_artifact):
    marker = tmp_path / "pwned"
    copy = tmp_path / "cnn"
    shutil.copytree(cnn_artifact.path, copy)
    torch.save({"weights": Payload(marker)}, copy / "model.pt")
    artifact = Artifact.load(copy, verify=False)
    artifact.save()  # checksum and all: only the unpickling stands between the file and its payload
    with pytest.raises(CheckpointError) as error:
        load_module(Artifact.load(copy))
    assert refused(error, copy / "model.pt") and not marker.exists()


def test_pickled_user_weights_in_a_pipeline_source_are_refused(tmp_path):
    from edgeopt.pipeline import _user_module

    marker, weights = tmp_path / "pwned", tmp_path / "weights.pt"
    torch.save(Payload(marker), weights)
    source = {"model": "mine", "module": "edgeopt.core.models.cnn:CNNModel", "weights": str(weights)}
    with pytest.raises(CheckpointError) as error:
        _user_module(source)
    assert refused(error, weights) and not marker.exists()
    with pytest.raises(CheckpointError) as error:
        load_state_dict(weights)
    assert refused(error, weights) and not marker.exists()


def test_a_pickled_hugging_face_checkpoint_is_refused(tmp_path):
    marker, directory = tmp_path / "pwned", tmp_path / "hf"
    directory.mkdir()
    shutil.copy(minilm_path() / "config.json", directory / "config.json")
    torch.save({"bert.embeddings.word_embeddings.weight": Payload(marker)}, directory / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as error:
        BertClassifier.from_pretrained(directory, num_labels=2)
    assert refused(error, directory / "pytorch_model.bin") and not marker.exists()
    with pytest.raises(CheckpointError) as error:  # the artifact loader's path to the same directory
        load_torch_model(tmp_path, "hf", {"builder": "bert"})
    assert refused(error, directory / "pytorch_model.bin") and not marker.exists()
