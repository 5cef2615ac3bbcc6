"""Config -> plan of candidates -> build (content-addressed cache) -> verify -> measure -> store -> report.

A build node is one step (source model, prune, distill, export, quantize) whose key hashes its parent's key,
its own parameters and its build environment (its code, the library versions, a user's factory source), so a
re-run reuses every artifact that did not change, changing one parameter rebuilds only what depends on it, and
an upgrade or a code change rebuilds instead of reusing a stale artifact. Nodes are written to a staging
directory and renamed into the cache when complete; a killed build leaves only a staging directory, which the
next run discards. Measurements go to the results store one candidate per transaction; a re-run skips
candidates the store already has (same id: same build, host, runtime version and settings), so a sweep killed
at any point (even SIGKILL) resumes without redoing or losing finished candidates.
"""
from __future__ import annotations

import fcntl
import importlib.util
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

from edgeopt.config import RUNTIME_FORMAT, Config, ModelConfig, RecipeConfig
from edgeopt.core.artifacts import Artifact, Family, Format
from edgeopt.core.errors import EdgeoptError, InvalidInput
from edgeopt.core.hashing import sha256_file, sha256_json, sha256_tree
from edgeopt.results import Row, candidate_id, rows_of

CACHE_DIR, RESULTS_DB = "cache", "results.db"


# ---------------------------------------------------------------- the plan


# The modules whose code makes each step's output (hashed into its build key).
STEP_CODE: dict[str, tuple[str, ...]] = {
    "source": ("edgeopt.core.models", "edgeopt.core.preprocess", "edgeopt.core.data", "edgeopt.core.train",
               "edgeopt.core.artifacts"),
    "prune": ("edgeopt.optimize.prune", "edgeopt.core.train", "edgeopt.core.models"),
    "distill": ("edgeopt.optimize.distill", "edgeopt.core.train", "edgeopt.core.models"),
    "export": ("edgeopt.export", "edgeopt.core.preprocess"),
    "sequence": ("edgeopt.optimize.sequence", "edgeopt.core.preprocess"),
    "quantize": ("edgeopt.optimize.quantize", "edgeopt.export"),
}


@dataclass(frozen=True)
class Node:
    """One build step. `key` identifies its output: a hash of the parent's key, this step's parameters and
    its build environment."""

    key: str
    kind: str  # source | prune | distill | export | quantize
    params: dict[str, Any]
    parent: "Node | None" = None
    environment: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def dirname(self) -> str:
        return f"{self.kind}-{self.key[:16]}"

    def chain(self) -> list["Node"]:
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    @property
    def trust_code(self) -> bool:
        """The user's own config names this chain's module factory, so loading its artifacts may run it."""
        return bool(self.chain()[0].params.get("module"))

    def describe(self) -> str:
        from edgeopt.results import describe_step

        if self.kind == "source":
            origin = next(f"{k}={self.params[k]}" for k in ("zoo", "module", "onnx", "huggingface")
                          if self.params.get(k))
            return f"source({origin})"
        return describe_step({"step": self.kind, **self.params})


@dataclass(frozen=True)
class Candidate:
    """One artifact on one runtime under one device profile, measured at each batch size."""

    id: str
    model: str
    recipe: str
    runtime: str
    device: str
    batch_sizes: tuple[int, ...]
    eval_samples: int | None
    node: Node
    key: dict[str, Any] = field(default_factory=dict, compare=False)  # what the id's hash is a hash of
    bench: Any = field(default=None, compare=False)  # the BenchConfig it is measured with (hashed into key)


@dataclass
class Plan:
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        """Every build node the candidates need, parents before children, each once."""
        seen: dict[str, Node] = {}
        for candidate in self.candidates:
            for node in candidate.node.chain():
                seen.setdefault(node.key, node)
        return list(seen.values())

    def describe(self) -> list[dict[str, Any]]:
        return [{"id": c.id, "model": c.model, "recipe": c.recipe, "runtime": c.runtime, "device": c.device,
                 "batch_sizes": list(c.batch_sizes), "eval_samples": c.eval_samples,
                 "build": [n.describe() for n in c.node.chain()]} for c in self.candidates]


def build_environment(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """What a step's output depends on besides its parameters: its own code, the library versions and, for a
    user's module factory, the factory's source file. The one place this part of a build key is computed."""
    from edgeopt.core import environment

    described: dict[str, Any] = {"code": code_digest(STEP_CODE[kind]), "libraries": environment.library_versions()}
    if params.get("module"):
        described["factory"] = factory_digest(params["module"], params.get("python_path"))
    return described


@lru_cache(maxsize=None)
def code_digest(modules: tuple[str, ...]) -> str:
    """sha256 of the source files of `modules` (a package: every .py file in it)."""
    files: list[Path] = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise EdgeoptError(f"cannot find the code of {name} to key its builds")
        if spec.submodule_search_locations:
            files += sorted(p for root in spec.submodule_search_locations for p in Path(root).rglob("*.py"))
        else:
            files.append(Path(spec.origin))
    return sha256_json([sha256_file(f) for f in files])


def factory_digest(module: str, python_path: str | None) -> str:
    """sha256 of the file defining a user's module factory `package.module:function` (found without
    importing it: from python_path, then sys.path)."""
    relative = Path(*module.split(":")[0].split("."))
    roots = ([Path(python_path)] if python_path else []) + [Path(p) for p in sys.path if p]
    for root in roots:
        for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
            if candidate.is_file():
                return sha256_file(candidate)
    raise InvalidInput(f"module {module}: no source file {relative}.py under {python_path or 'sys.path'}")


def make_node(kind: str, params: dict[str, Any], parent: Node | None = None) -> Node:
    """A node keyed by its parent, kind, parameters and build environment."""
    env = build_environment(kind, params)
    key = sha256_json({"parent": parent.key if parent else None, "kind": kind, "params": params, "environment": env})
    return Node(key=key, kind=kind, params=params, parent=parent, environment=env)


IMAGE_FIELDS = ("image_mean", "image_std", "image_channels", "image_size", "image_resize", "channel_order", "layout")


def source_node(name: str, model: ModelConfig) -> Node:
    """The input model, identified by content: the zoo checkpoint's sha256, or a hash of the user's files."""
    from edgeopt.core.models.zoo import find_zoo_checkpoint

    params: dict[str, Any] = {"model": name, "family": str(model.source_family)}
    if model.zoo and model.dataset:  # the zoo architecture and recipe, trained on the user's data in the sweep
        params.update(zoo=model.zoo, dataset=model.dataset, digest=_file_digest(_dataset_path(model.dataset)))
    elif model.zoo:
        checkpoint = find_zoo_checkpoint(model.zoo)
        params.update(zoo=model.zoo, digest=checkpoint.sha256 if checkpoint else "untrained")
    else:
        for key in ("module", "onnx", "huggingface", "weights", "dataset", "python_path", "vocab", "tokenizer"):
            value = getattr(model, key)
            if value is not None:
                params[key] = str(value)
        files = [model.weights or model.onnx or model.huggingface, _dataset_path(model.dataset)]
        if model.source_family == Family.LSTM:  # a text module: its preprocessing is part of what it is
            params.update(lowercase=model.lowercase, padding_side=model.padding_side)
            files.append(model.vocab or model.tokenizer)
        params.update(kwargs=model.kwargs, max_len=model.max_len, label_map=model.label_map,
                      **{k: getattr(model, k) for k in IMAGE_FIELDS},
                      digest=sha256_json([_file_digest(path) for path in files]))
    return make_node("source", params)


def _file_digest(path: Path | str | None) -> str | None:
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file or directory (named in the config)")
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def _dataset_path(spec: str | None) -> Path | None:
    from edgeopt.core.data import BUILTIN_DATASETS

    return None if spec is None or spec in BUILTIN_DATASETS else Path(spec)


def recipe_node(source: Node, recipe: RecipeConfig, runtime: str) -> Node:
    """prune -> distill -> sequence -> export (unless torch fp32) -> quantize: the chain of nodes for one
    recipe/runtime."""
    node = source
    if recipe.prune is not None:
        node = make_node("prune", recipe.prune.model_dump(mode="json"), node)
    if recipe.distill is not None:
        node = make_node("distill", recipe.distill.model_dump(mode="json"), node)
    if recipe.sequence is not None:
        node = make_node("sequence", recipe.sequence.model_dump(mode="json"), node)
    fmt = RUNTIME_FORMAT[runtime]
    source_format = Format.ONNX if source.params.get("onnx") else Format.TORCH
    if fmt != source_format or recipe.precision != "fp32":
        node = make_node("export", {"format": str(fmt), "precision": recipe.precision}, node)
    if recipe.quantize is not None:
        node = make_node("quantize", recipe.quantize.model_dump(mode="json"), node)
    return node


def _profile_runs(profile, runtime: str) -> str | None:
    """Why `runtime` cannot run on this profile's device here, or None when it can."""
    from edgeopt.runtimes import get_runtime_class

    if runtime == "tensorrt" and not profile.is_cuda:
        return "TensorRT runs on CUDA GPUs only; it is planned on cuda:N device profiles"
    if profile.remote is not None:  # a board: what its agent runs, not what this host has
        return profile.remote.cannot_run(runtime)

    probe = get_runtime_class(runtime).availability()
    if not probe.ok:
        return probe.reason
    kind = profile.device.lower().split(":")[0]
    devices = {d.lower().split(":")[0] for d in probe.devices}
    if devices and kind not in devices:
        return f"it runs on {', '.join(sorted(devices))} here, not {profile.device}"
    return None


def make_plan(config: Config, host: Callable[[Any], dict | None] | None = None) -> Plan:
    """Expand the config into candidates; unavailable runtimes/devices are skipped with a note, bad input raises.
    `host(profile)` is where an executor measures that profile (keyed into the ids; this machine by default)."""
    from edgeopt.benchmarks.profiles import get_profile
    from edgeopt.benchmarks.sweep import BenchConfig, measurement_key
    from edgeopt.export import EXPORTERS
    from edgeopt.runtimes import get_runtime_class

    candidates, notes = [], []
    profiles: dict[str, Any] = {}
    for name, model in config.models.items():
        for device in model.devices or config.devices:
            if device not in profiles:
                try:
                    profiles[device] = get_profile(device)
                except InvalidInput as error:
                    if not device.startswith("cuda"):
                        raise InvalidInput(f"models.{name}.devices / devices: {error}") from None
                    profiles[device] = None
                    notes.append(f"skipped device {device}: {error}")
        source = source_node(name, model)
        for recipe in model.recipes:
            for runtime in recipe.runtimes:
                fmt = RUNTIME_FORMAT[runtime]
                if fmt != Format.TORCH and recipe.precision not in EXPORTERS[str(fmt)].precisions:
                    raise InvalidInput(f"models.{name}.recipes.{recipe.name}: {fmt} export supports precision "
                                       f"{', '.join(EXPORTERS[str(fmt)].precisions)}, not {recipe.precision}; "
                                       f"remove {runtime} from its runtimes")
                why = EXPORTERS[str(fmt)].unavailable() if fmt != Format.TORCH else None
                if why:
                    notes.append(f"skipped recipe {name}/{recipe.name} on {runtime}: {why}")
                    continue
                if fmt == Format.TORCH and recipe.precision != "fp32":
                    raise InvalidInput(f"models.{name}.recipes.{recipe.name}: the torch runtime runs fp32 "
                                       f"models; remove torch from its runtimes or use precision fp32")
                if recipe.precision == "bf16" and "bf16" not in get_runtime_class(runtime).availability().extra.get(
                        "precisions", ()):  # bf16 is a way of computing: only where the hardware has it
                    notes.append(f"skipped recipe {name}/{recipe.name} on {runtime}: no bf16 math on this machine")
                    continue
                node = recipe_node(source, recipe, runtime)
                for device in model.devices or config.devices:
                    profile = profiles[device]
                    if profile is None:
                        continue
                    why = _profile_runs(profile, runtime)
                    if why:
                        note = f"skipped runtime {runtime} on {device}: {why}"
                        if note not in notes:
                            notes.append(note)
                        continue
                    samples = model.eval_samples or config.measure.eval_samples
                    bench = BenchConfig(latency=config.measure.latency, accuracy_samples=samples, seed=config.seed,
                                        timeout_s=config.measure.timeout_s)
                    key = {"node": node.key, "build": node.environment,
                           **measurement_key(runtime, profile, bench, host(profile) if host else None)}
                    candidates.append(Candidate(
                        id=candidate_id(name, recipe.name, runtime, device, sha256_json(key)), model=name,
                        recipe=recipe.name, runtime=runtime, device=device,
                        batch_sizes=tuple(model.batch_sizes or config.batch_sizes), eval_samples=samples,
                        node=node, key=key, bench=bench))
    # ancestors first, so an FP32 parent's predictions are at hand for its children's fidelity
    candidates.sort(key=lambda c: len(c.node.chain()))
    return Plan(candidates, notes)


# ---------------------------------------------------------------- building


def build_node(node: Node, parent: Artifact | None, cache: Path, progress=None) -> Artifact:
    """The node's artifact from the cache, or built now (under a file lock, staged, then renamed in)."""
    if node.kind == "source" and node.params.get("zoo") and not node.params.get("dataset"):
        from edgeopt.core.models.zoo import load_zoo_model

        return load_zoo_model(node.params["zoo"], train_if_missing=True, progress=progress)
    final = cache / node.dirname
    if (final / "artifact.json").exists():
        return Artifact.load(final, trust_code=node.trust_code)
    (cache / ".locks").mkdir(parents=True, exist_ok=True)
    with open(cache / ".locks" / node.dirname, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another --jobs worker or another run may build the same node
        if (final / "artifact.json").exists():
            return Artifact.load(final, trust_code=node.trust_code)
        staging = cache / f"{node.dirname}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        built = BUILDERS[node.kind](node, parent, staging, progress)
        built_dir = Path(built.path)
        if built_dir.resolve() != staging.resolve():
            raise EdgeoptError(f"{node.kind} step wrote {built_dir}, not its staging directory {staging}")
        staging.rename(final)
    return Artifact.load(final, trust_code=node.trust_code)


def _build_source(node: Node, parent: Artifact | None, out: Path, progress) -> Artifact:
    """A user's model (module factory + state_dict, ONNX file, or Hugging Face directory) as an artifact."""
    from edgeopt.core.data import apply_label_map, load_dataset
    from edgeopt.core.models.zoo import save_torch_artifact
    from edgeopt.core.preprocess import WordPieceEncoder

    p = node.params
    if p.get("zoo"):  # a zoo architecture and training recipe on the user's data
        from edgeopt.core.models.zoo import train_zoo_model

        return train_zoo_model(p["zoo"], out=out, progress=progress, dataset=p["dataset"])
    data = load_dataset(p["dataset"])
    if p.get("label_map"):
        data = apply_label_map(data, p["label_map"], f"models.{p['model']}.label_map")
    if p.get("huggingface"):
        from edgeopt.core.models.bert import BertClassifier

        if data.kind != "text":
            raise InvalidInput(f"{p['dataset']}: a Hugging Face text model needs a text data set (CSV text,label)")
        by_name = None if p.get("label_map") else _label_map_from_names(Path(p["huggingface"]), data.classes)
        if by_name:
            data = apply_label_map(data, by_name, f"{p['huggingface']}: id2label")
        model = BertClassifier.from_pretrained(p["huggingface"], num_labels=len(data.classes) or None)
        encoder = WordPieceEncoder.from_pretrained(p["huggingface"], p.get("max_len") or 64)
        artifact = save_torch_artifact(model, {"builder": "bert", "source": p["huggingface"]}, encoder, out,
                                       name=p["model"], family=Family.BERT, data=data)
    elif p["family"] == Family.LSTM:
        if data.kind != "text":
            raise InvalidInput(f"{p['dataset']}: a text model needs a text data set (CSV text,label)")
        if p.get("module"):
            module = _user_module(p)
            artifact = save_torch_artifact(module, _factory_arch(p), _text_preprocessor(p, _forward_inputs(p, module)),
                                           out, name=p["model"], family=Family.LSTM, data=data)
        else:
            artifact = _onnx_artifact(p, data, out)
    else:
        if data.kind != "image":
            raise InvalidInput(f"{p['dataset']}: a cnn model needs an image data set (IDX or image folder)")
        if p.get("module"):
            artifact = save_torch_artifact(_user_module(p), _factory_arch(p), _image_preprocessor(p, data), out,
                                           name=p["model"], family=Family.CNN, data=data)
        else:
            artifact = _onnx_artifact(p, data, out)
    if not data.labelled:
        data = _label_by_source(artifact, data)
        artifact.labels = data.classes
    artifact.dataset = {**data.describe(), "name": p["dataset"]}  # the path, so every later step can load it again
    artifact.save()
    return artifact


def _label_by_source(artifact: Artifact, data):
    """Inputs without labels: the source model's own top-1 predictions (through its own runtime) become the
    reference, so every candidate's accuracy is its top-1 agreement with the source model."""
    from edgeopt.core.data import with_reference
    from edgeopt.optimize.quantize import predictions_through_runtime

    artifact.trust_code = True  # the config that named this model's factory is running it
    labels = {split.name: predictions_through_runtime(artifact, split) for split in (data.train, data.val, data.test)}
    outputs = int(artifact.outputs[0].shape[-1])
    return with_reference(data, labels, outputs, str(artifact.path))


def _label_map_from_names(directory: Path, classes: list[str]) -> dict[str, int] | None:
    """A Hugging Face model's own output names (`id2label`) matched to the data's class names (case aside), when
    the model names its outputs and they are not the data's classes in order; unnamed outputs (LABEL_0, ...) or
    integer classes keep class i = output i. A class the model does not name is an error asking for label_map."""
    import re

    from transformers import AutoConfig

    names = {int(i): str(label) for i, label in (AutoConfig.from_pretrained(str(directory)).id2label or {}).items()}
    if all(re.fullmatch(r"LABEL_\d+", n) for n in names.values()) or all(c.isdigit() for c in classes):
        return None
    outputs = {name.lower(): index for index, name in names.items()}
    unnamed = [c for c in classes if c.lower() not in outputs]
    if unnamed:
        raise InvalidInput(f"{directory}: the model names its outputs {list(names.values())} (id2label), but the "
                           f"data's classes {unnamed} are none of them; map every class to an output with label_map")
    found = {c: outputs[c.lower()] for c in classes}
    return None if list(found.values()) == list(range(len(classes))) else found


def _image_preprocessor(p: dict, data):
    """The user's image preprocessing; what they left out is read from the data: channels and size as stored,
    and the per-channel mean/std of up to 500 training images through the same resize and crop."""
    from edgeopt.core.data import image_shape
    from edgeopt.core.preprocess import ImagePreprocessor

    channels, size = image_shape(data.train)
    geometry = {"channels": p.get("image_channels") or channels, "size": p.get("image_size") or size,
                "resize": p.get("image_resize"), "channel_order": p.get("channel_order") or "RGB"}
    mean, std = p.get("image_mean"), p.get("image_std")
    if mean is None or std is None:
        raw = ImagePreprocessor(0.0, 1.0, layout="NHWC", **geometry)(data.train.subset(500).inputs)
        pixels = raw["pixel_values"].reshape(-1, geometry["channels"])
        mean = [round(float(v), 4) for v in pixels.mean(0)] if mean is None else mean
        std = [round(max(float(v), 1e-3), 4) for v in pixels.std(0)] if std is None else std
    return ImagePreprocessor(mean, std, layout=p.get("layout") or "NCHW", **geometry)


def _factory_arch(p: dict) -> dict:
    return {"builder": "factory", "factory": p["module"], "kwargs": p.get("kwargs") or {},
            "path": p.get("python_path")}


def _user_module(p: dict):
    """The user's module from their factory (their config names it, so it runs) with their state_dict."""
    from edgeopt.core.models import build_module, load_state_dict

    module = build_module(_factory_arch(p), trust_code=True)
    if p.get("weights"):
        state = load_state_dict(Path(p["weights"]))
        try:
            module.load_state_dict(state)
        except RuntimeError as error:
            raise InvalidInput(f"{p['weights']}: cannot load it into {p['module']}: "
                               f"{str(error).splitlines()[0]}") from None
    return module


def _forward_inputs(p: dict, module) -> tuple[str, ...]:
    """The text inputs a module's forward takes: input_ids, and attention_mask where it has that parameter."""
    import inspect

    takes = list(inspect.signature(module.forward).parameters)
    if "input_ids" not in takes:
        raise InvalidInput(f"{p['module']}: forward takes ({', '.join(takes)}); a text model is called as "
                           "model(input_ids=...) (and attention_mask=... when it takes one)")
    return ("input_ids", "attention_mask") if "attention_mask" in takes else ("input_ids",)


def _text_preprocessor(p: dict, inputs: tuple[str, ...]):
    """A text model's preprocessing (its vocabulary file or tokenizer directory) making `inputs`."""
    from edgeopt.core.preprocess import VocabEncoder, WordPieceEncoder

    if p.get("tokenizer"):
        return WordPieceEncoder.from_pretrained(p["tokenizer"], p.get("max_len") or 64, inputs)
    return VocabEncoder.from_file(Path(p["vocab"]), max_len=p.get("max_len") or 64, inputs=inputs,
                                  lowercase=p.get("lowercase", True), padding_side=p.get("padding_side", "right"))


def _onnx_artifact(p: dict, data, out: Path) -> Artifact:
    """A user's ONNX file: its inputs (names, dtypes, dynamic axes) read from the graph; the preprocessing, which
    the graph cannot say, from the config."""
    import onnx

    from edgeopt.export.wrap import _tensor_spec

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(p["onnx"], out / "model.onnx")
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    inputs = [_tensor_spec(i) for i in graph.input if i.name not in weights]
    family = Family(p["family"])
    preprocessor = _onnx_text_preprocessor(p, inputs) if family == Family.LSTM else \
        _onnx_image_preprocessor(p, inputs, data)
    artifact = Artifact(name=p["model"], family=family, format=Format.ONNX, model_file="model.onnx",
                        preprocess=preprocessor.to_spec(), inputs=preprocessor.input_specs(),
                        outputs=[_tensor_spec(t) for t in graph.output],  # the graph's width, not the labels
                        labels=data.classes, dataset=data.describe(), recipe=[{"step": "import", "onnx": p["onnx"]}])
    if hasattr(preprocessor, "save"):
        preprocessor.save(out)
    artifact.path = out
    return artifact.save()


TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _onnx_text_preprocessor(p: dict, inputs):
    """A text ONNX model takes int64 token ids (and a mask or token types), batch and sequence left dynamic."""
    wrong = [f"{t.name} ({t.dtype}, {t.shape})" for t in inputs
             if t.name not in TEXT_INPUTS or t.dtype != "int64" or any(isinstance(d, int) for d in t.shape)]
    if wrong or "input_ids" not in [t.name for t in inputs]:
        raise InvalidInput(f"{p['onnx']}: inputs {[t.name for t in inputs]}; a text ONNX model takes input_ids and "
                           f"optionally attention_mask and token_type_ids, int64, with dynamic batch and sequence "
                           f"axes (export with dynamic_axes); these are not: {wrong or ['input_ids missing']}")
    return _text_preprocessor(p, tuple(t.name for t in inputs))


def _onnx_image_preprocessor(p: dict, inputs, data):
    """An image ONNX model takes one float32 or float16 tensor of any name, in the layout the config gives."""
    if len(inputs) != 1 or inputs[0].dtype not in ("float32", "float16"):
        raise InvalidInput(f"{p['onnx']}: inputs are {[f'{t.name} ({t.dtype})' for t in inputs]}; an image ONNX "
                           "model takes one float32 or float16 input (batch x channels x height x width, or NHWC)")
    preprocessor = _image_preprocessor(p, data)
    takes, gives = inputs[0].shape, preprocessor.input_specs()[0].shape
    if len(takes) != 4 or any(isinstance(t, int) and t != g for t, g in zip(takes[1:], gives[1:])):
        raise InvalidInput(f"{p['onnx']}: input {inputs[0].name!r} is {takes} in the graph, but the preprocessing "
                           f"makes {gives} (layout {preprocessor.layout}, image_channels {preprocessor.channels}, "
                           f"image_size {preprocessor.size}); set those fields to what the model takes")
    preprocessor.input_name, preprocessor.dtype = inputs[0].name, inputs[0].dtype  # fed by the graph's name
    return preprocessor


def _build_prune(node: Node, parent: Artifact, out: Path, progress) -> Artifact:
    from edgeopt.optimize.prune import PruneConfig, prune

    return prune(parent, PruneConfig.model_validate(node.params), out, progress=progress)


def _build_distill(node: Node, parent: Artifact, out: Path, progress) -> Artifact:
    from edgeopt.optimize.distill import DistillConfig, distill

    return distill(parent, DistillConfig.model_validate(node.params), out, progress=progress)


def _build_sequence(node: Node, parent: Artifact, out: Path, progress) -> Artifact:
    from edgeopt.optimize.sequence import SequenceConfig, shorten

    return shorten(parent, SequenceConfig.model_validate(node.params), out)


def _build_export(node: Node, parent: Artifact, out: Path, progress) -> Artifact:
    from edgeopt.export import export_artifact

    return export_artifact(parent, node.params["format"], out, precision=node.params["precision"], verify=True)


def _build_quantize(node: Node, parent: Artifact, out: Path, progress) -> Artifact:
    from edgeopt.optimize.quantize import QuantizeConfig, quantize

    return quantize(parent, QuantizeConfig.model_validate(node.params), out)


BUILDERS: dict[str, Callable[[Node, Artifact | None, Path, Any], Artifact]] = {
    "source": _build_source, "prune": _build_prune, "distill": _build_distill, "sequence": _build_sequence,
    "export": _build_export, "quantize": _build_quantize,
}


def _build_in_worker(node: Node, parent_dir: str | None, cache: str) -> str:
    """--jobs: build one node in a worker process; returns the artifact directory."""
    parent = Artifact.load(parent_dir, trust_code=node.trust_code) if parent_dir else None
    return str(build_node(node, parent, Path(cache)).path)


def build_all(nodes: list[Node], cache: Path, jobs: int = 1, progress=None,
              on_built: Callable[[Node], None] | None = None) -> tuple[dict[str, Artifact], dict[str, str]]:
    """Build every node (parents first). Returns artifacts and errors by node key; a failed node's
    descendants fail with a message naming it, and everything else is still built."""
    built: dict[str, Artifact] = {}
    errors: dict[str, str] = {}

    def blocked(node: Node) -> bool:
        if node.parent is not None and node.parent.key in errors:
            errors[node.key] = f"not built: its {node.parent.kind} step failed: {errors[node.parent.key]}"
            return True
        return False

    if jobs <= 1:
        for node in nodes:
            if not blocked(node):
                try:
                    built[node.key] = build_node(node, built.get(node.parent.key) if node.parent else None, cache,
                                                 progress)
                except Exception as error:  # noqa: BLE001 - a failed build is recorded; the sweep goes on
                    errors[node.key] = _error_text(error)
            if on_built:
                on_built(node)
        return built, errors

    pending = list(nodes)
    running: dict[Future, Node] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        while pending or running:
            for node in list(pending):
                if node.parent is None or node.parent.key in built or node.parent.key in errors:
                    pending.remove(node)
                    if blocked(node):
                        if on_built:
                            on_built(node)
                        continue
                    parent_dir = str(built[node.parent.key].path) if node.parent else None
                    running[pool.submit(_build_in_worker, node, parent_dir, str(cache))] = node
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                node = running.pop(future)
                try:
                    built[node.key] = Artifact.load(future.result(), trust_code=node.trust_code)
                except Exception as error:  # noqa: BLE001
                    errors[node.key] = _error_text(error)
                if on_built:
                    on_built(node)
    return built, errors


def _error_text(error: BaseException) -> str:
    if isinstance(error, EdgeoptError):
        return str(error)
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------- measuring and the run


@dataclass
class RunResult:
    plan: Plan
    output: Path
    measured: int = 0
    resumed: int = 0
    failed: int = 0
    built: int = 0
    seconds: float = 0.0
    rows: list[Row] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> dict[str, Any]:
        return {"candidates": len(self.plan.candidates), "measured": self.measured, "resumed": self.resumed,
                "failed": self.failed, "built": self.built,
                "seconds": round(self.seconds, 1), "output": str(self.output),
                "reports": {k: str(v) for k, v in self.reports.items()}, "notes": self.plan.notes}


def failed_measurements(candidate: Candidate, batch_sizes: list[int], error: str, artifact: Artifact | None):
    """Measurements with status failed for a candidate whose artifact could not be built."""
    from edgeopt.benchmarks.results import ArtifactInfo, Measurement
    from edgeopt.core.environment import provenance

    if artifact is not None:
        info = ArtifactInfo.of(artifact)
    else:
        family = candidate.node.chain()[0].params.get("family", "cnn")
        fmt = RUNTIME_FORMAT[candidate.runtime]
        node = candidate.node
        precision = (node.params.get("precision", "fp32") if node.kind == "export"
                     else ("fp16" if node.params.get("mode") == "fp16" else "int8") if node.kind == "quantize"
                     else "fp32")
        info = ArtifactInfo(name=f"{candidate.model}-{candidate.recipe}", sha256=f"unbuilt:{candidate.node.key}",
                            path="", family=family, format=str(fmt), precision=str(precision),
                            recipe=[{"step": n.kind, **n.params} for n in candidate.node.chain()[1:]])
    return [Measurement(candidate_id=candidate.id, artifact=info, runtime=candidate.runtime, device=candidate.device,
                        batch_size=b, status="failed", error=error, provenance=provenance()) for b in batch_sizes]


def prepare_sources(config: Config, progress: Callable | None = None) -> None:
    """Train zoo models that are missing (BERT is fine-tuned on first use) before planning, so the candidate
    ids, which hash the checkpoint, are final."""
    from edgeopt.core.models.zoo import load_zoo_model

    for model in config.models.values():
        if model.zoo and not model.dataset:
            load_zoo_model(model.zoo, train_if_missing=True, progress=progress)


def remeasure_notes(store, candidates: list[Candidate]) -> list[str]:
    """One note per candidate measured before under another key: what changed (a library, the host, a
    setting, the build), so a report says why its numbers are new."""
    notes = []
    for candidate in candidates:
        old = store.superseded(candidate.id)
        if old is not None:
            label = candidate.id.split("#", 1)[0]
            notes.append(f"re-measured {label}: {changed(old.provenance.get('key') or {}, candidate.key)}")
    return notes


def changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two candidate keys, briefly: `onnxruntime 1.31 -> 1.32`, `host changed (...)`."""
    if not old:
        return "measured by an older edgeopt that did not record its key"
    before, after = _flatten(old), _flatten(new)
    differences = []
    first = ("runtime_version", "build.libraries")  # upgrades lead
    for path in sorted(set(before) | set(after), key=lambda p: (not p.startswith(first), p)):
        if before.get(path) == after.get(path) or path == "node":
            continue
        values = f"{before.get(path)} -> {after.get(path)}"
        if path.startswith("host."):
            differences.append(f"host changed ({path.removeprefix('host.')}: {values})")
        elif path.startswith(("build.code", "build.factory")):
            differences.append(f"{'your model code' if 'factory' in path else 'edgeopt build code'} changed")
        elif path == "runtime_version":
            differences.append(f"{new.get('runtime')} {values}")
        else:
            differences.append(f"{path.removeprefix('build.libraries.')} {values}")
    if not differences:
        differences.append("its recipe or input model changed")
    unique = list(dict.fromkeys(differences))
    return "; ".join(unique[:4]) + (f"; and {len(unique) - 4} more" if len(unique) > 4 else "")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def plan_rows(store, plan: Plan) -> list[Row]:
    """The newest stored row of each of the plan's candidates and batch sizes."""
    ids = [c.id for c in plan.candidates]
    return rows_of(store.measurements(candidate_id=ids, latest=True)) if ids else []


def run_sweep(config: Config, jobs: int = 1, progress: Callable | None = None,
              retry_failed: bool = False) -> RunResult:
    """Build, verify, measure and store every candidate the store does not have yet (resume), on the config's
    executor (`jobs`: the local executor's build processes)."""
    from edgeopt.benchmarks.profiles import get_profile
    from edgeopt.benchmarks.sweep import Candidate as BenchCandidate
    from edgeopt.executors import MeasureJob, get_executor
    from edgeopt.store import ResultStore

    started = time.perf_counter()
    executor = get_executor(config.executor, jobs=jobs)
    prepare_sources(config, progress)
    plan = make_plan(config, executor.host)
    output = Path(config.output)
    result = RunResult(plan=plan, output=output)
    output.mkdir(parents=True, exist_ok=True)
    with ResultStore(output / RESULTS_DB) as store:
        done_status = "ok" if retry_failed else None
        todo = {c.id: [b for b in c.batch_sizes if not store.has(c.id, b, status=done_status)]
                for c in plan.candidates}
        pending = [c for c in plan.candidates if todo[c.id]]
        result.resumed = len(plan.candidates) - len(pending)
        plan.notes += remeasure_notes(store, pending)
        needed = Plan(pending).nodes
        advance = progress("build + verify", len(needed)) if progress and needed else None
        built, errors = executor.build(needed, output / CACHE_DIR, progress=progress,
                                       on_built=(lambda node: advance(" -> ".join(n.describe() for n in node.chain())))
                                       if advance else None)
        result.built = len(built)
        advance = progress("measure", len(pending)) if progress and pending else None
        by_id = {c.id: c for c in pending}

        def store_rows(candidate: Candidate, rows: list) -> None:
            # the key beside the numbers: a later run says what changed when it re-measures
            rows = [m.model_copy(update={"provenance": {**m.provenance, "key": candidate.key}}) for m in rows]
            store.add_many(rows)  # one transaction per candidate: a kill never leaves half a candidate
            result.measured += 1
            if advance:
                advance(f"{candidate.model}/{candidate.recipe} {candidate.runtime} on {candidate.device}")

        measure = []
        for candidate in pending:
            artifact = built.get(candidate.node.key)
            if artifact is None:
                store_rows(candidate, failed_measurements(candidate, todo[candidate.id],
                                                          errors.get(candidate.node.key, "not built"), None))
            else:
                measure.append(MeasureJob(candidate.id,
                                          BenchCandidate(artifact, candidate.runtime, get_profile(candidate.device)),
                                          candidate.bench.model_copy(update={"batch_sizes": todo[candidate.id]})))
        executor.measure(measure, lambda job, rows: store_rows(by_id[job.id], rows))
        result.rows = plan_rows(store, plan)
    result.failed = sum(1 for r in result.rows if not r.ok)
    result.seconds = time.perf_counter() - started
    return result
