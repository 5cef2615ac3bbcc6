"""The YAML config: which models, which recipes (prune / distill / quantize), which runtimes, devices, batches.

Pydantic models are the single source of truth: they validate the YAML (unknown keys and wrong types are
errors that name the field and what is allowed) and export the JSON Schema (`edgeopt schema`).
"""
from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from edgeopt.core.artifacts import Family, Format
from edgeopt.core.errors import InvalidInput
from edgeopt.core.strict import StrictModel
from edgeopt.benchmarks.latency import LatencyConfig
from edgeopt.core.step_configs import DistillConfig, PruneConfig, QuantizeConfig, SequenceConfig
from edgeopt.recommend import Budget

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"
RuntimeName = Literal["torch", "onnxruntime", "openvino", "tensorrt", "executorch", "litert"]
ZooName = Literal["cnn", "resnet", "lstm", "bert"]
# Each zoo model's family, known without importing the zoo (and torch); tests/test_config.py checks it against ZOO.
ZOO_FAMILIES: dict[str, Family] = {"cnn": Family.CNN, "resnet": Family.CNN, "lstm": Family.LSTM, "bert": Family.BERT}
# The format each runtime executes; a recipe's runtimes decide which exports are built.
RUNTIME_FORMAT: dict[str, Format] = {"torch": Format.TORCH, "onnxruntime": Format.ONNX,
                                     "openvino": Format.OPENVINO, "tensorrt": Format.TENSORRT,
                                     "executorch": Format.EXECUTORCH, "litert": Format.LITERT}
MODULE_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class RecipeConfig(StrictModel):
    """One way of making a variant: optional prune, then distill, then sequence, then export, then quantize (always
    that order)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$", description="short name shown in reports (e.g. pruned-int8)")
    prune: PruneConfig | None = Field(None, description="structured pruning (torch-pruning) with short recovery")
    distill: DistillConfig | None = Field(None, description="knowledge distillation into a smaller student")
    sequence: SequenceConfig | None = Field(None, description="text models: deploy with fewer tokens per text "
                                                               "(max_len; longer texts are truncated)")
    quantize: QuantizeConfig | None = Field(None, description="post-training quantization of the exported model")
    precision: Literal["fp32", "fp16", "bf16", "int8"] = Field(
        "fp32", description="export precision (fp16 halves weights; bf16: OpenVINO computes in bf16, where the "
                            "CPU has it; int8: executorch and litert quantize while exporting)")
    runtimes: list[RuntimeName] = Field(default_factory=lambda: ["torch", "onnxruntime", "openvino"],
                                        min_length=1, description="runtimes to measure this recipe on; each "
                                        "implies its format (torch, onnx, openvino IR, tensorrt engine)")


    @model_validator(mode="after")
    def _runtimes_fit(self) -> "RecipeConfig":
        if self.quantize is not None and "torch" in self.runtimes:
            raise ValueError(f"recipe {self.name!r}: quantize works on exported models (onnxruntime, openvino); "
                             "remove torch from its runtimes")
        if self.quantize is not None and "tensorrt" in self.runtimes:
            raise ValueError(f"recipe {self.name!r}: TensorRT builds its own INT8 engines; remove tensorrt from "
                             "the runtimes of a quantize recipe")
        if self.quantize is not None and {"executorch", "litert"} & set(self.runtimes):
            raise ValueError(f"recipe {self.name!r}: ExecuTorch and LiteRT quantize while exporting; use precision: "
                             "int8 instead of quantize for them")
        if len(set(self.runtimes)) != len(self.runtimes):
            raise ValueError(f"recipe {self.name!r}: runtimes listed twice ({self.runtimes})")
        return self


class ModelConfig(StrictModel):
    """Where a model comes from: exactly one of zoo, module (+ weights), onnx, huggingface."""

    zoo: ZooName | None = Field(None, description="a built-in zoo model (trained on first use if needed)")
    module: str | None = Field(None, description="your torch model: 'package.module:function' returning an "
                                                 "nn.Module called as model(**inputs)")
    weights: Path | None = Field(None, description="state_dict file for `module` (loaded with weights_only=True)")
    python_path: Path | None = Field(None, description="directory `module` is imported from when it is not "
                                                       "installed (default: the config file's directory)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for the module factory")
    onnx: Path | None = Field(None, description="your ONNX file (inputs named as the family expects)")
    huggingface: Path | None = Field(None, description="a Hugging Face sequence-classification directory "
                                                       "(with its tokenizer)")
    family: Family | None = Field(None, description="cnn (images: pixel_values), lstm (a text module over token "
                                                    "ids: LSTM/GRU/TextCNN/transformer, with vocab or tokenizer) "
                                                    "or bert; implied for zoo and huggingface, default cnn")
    dataset: str | None = Field(None, description="fashion-mnist, rotten-tomatoes, or a path: IDX directory, "
                                                  "image folder, CSV (text,label), or without labels a folder "
                                                  "of images or a .txt of texts; for your own model, or to "
                                                  "train the zoo lstm or bert on your CSV")
    image_mean: float | list[float] | None = Field(None, description="your cnn: normalisation mean on 0..1 pixels, "
                                                                    "one value or one per channel in the model's "
                                                                    "channel order (default: measured on train)")
    image_std: float | list[float] | None = Field(None, description="your cnn: normalisation std, one value or one "
                                                                   "per channel (default: measured on train)")
    image_channels: Literal[1, 3, 4] | None = Field(None, description="your cnn: input channels (default: the "
                                                                      "data's: 1 for IDX, the first image's mode)")
    image_size: int | None = Field(None, ge=8, description="your cnn: input height = width, a centre crop "
                                                           "(default: the data's, the first image's shorter side)")
    image_resize: int | None = Field(None, ge=8, description="your cnn: shorter side resized to this before the "
                                                             "crop (default: image_size; ImageNet: 256 for 224)")
    channel_order: Literal["RGB", "BGR"] = Field("RGB", description="your cnn: channel order the model takes")
    layout: Literal["NCHW", "NHWC"] = Field("NCHW", description="your cnn: pixel_values layout the model takes")
    label_map: dict[str, int] | None = Field(None, description="your model: data class name -> model output "
                                                               "index, when the model's outputs are not the "
                                                               "data's classes in order (an ImageNet model)")
    vocab: Path | None = Field(None, description="your text module: vocabulary file, one token per line (line "
                                                 "number = id) or a JSON list, with <pad>/[PAD] and <unk>/[UNK]")
    tokenizer: Path | None = Field(None, description="your text module: a Hugging Face tokenizer directory "
                                                     "(instead of vocab)")
    lowercase: bool = Field(True, description="vocab: lowercase texts before splitting them into words")
    padding_side: Literal["right", "left"] = Field("right", description="vocab: where padding goes")
    max_len: int = Field(64, ge=8, le=512, description="text models: tokens per text (longer texts are truncated)")
    eval_samples: int | None = Field(None, ge=1, description="seeded test subset for accuracy (default: measure's)")
    devices: list[str] | None = Field(None, min_length=1, description="override the top-level devices")
    batch_sizes: list[int] | None = Field(None, min_length=1, description="override the top-level batch sizes")
    recipes: list[RecipeConfig] = Field(default_factory=lambda: [RecipeConfig(name="fp32")], min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> "ModelConfig":
        sources = [k for k in ("zoo", "module", "onnx", "huggingface") if getattr(self, k) is not None]
        if len(sources) != 1:
            raise ValueError(f"give exactly one model source of zoo, module, onnx, huggingface (got "
                             f"{', '.join(sources) or 'none'})")
        if self.module is not None and not MODULE_FACTORY.match(self.module):
            raise ValueError(f"module {self.module!r} must look like 'package.module:function'")
        if self.weights is not None and self.module is None:
            raise ValueError("weights only go with module (a state_dict for your factory)")
        if (self.module or self.onnx) and self.family == Family.BERT:
            raise ValueError("family bert is a huggingface directory; a text model of your own (module or onnx) "
                             "is family lstm (any architecture over token ids, with vocab or tokenizer)")
        text_model = (self.module or self.onnx) is not None and self.family == Family.LSTM
        if text_model and (self.vocab is None) == (self.tokenizer is None):
            raise ValueError("a text model of your own (family lstm) needs its preprocessing: exactly one of vocab "
                             "(a vocabulary file) or tokenizer (a Hugging Face tokenizer directory)")
        if not text_model and (self.vocab or self.tokenizer):
            raise ValueError("vocab and tokenizer go with a text model of your own (module or onnx, family: lstm)")
        if (self.module or self.onnx or self.huggingface) and self.dataset is None:
            raise ValueError("dataset is required for your own model (a name or a path)")
        if self.zoo in ("cnn", "resnet") and self.dataset is not None:
            raise ValueError(f"dataset: zoo model {self.zoo!r} is trained and measured on Fashion-MNIST; the zoo "
                             "lstm and bert train on your text CSV, and your own image model comes as module or onnx")
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            values = value if isinstance(value, list) else [] if value is None else [value]
            if self.image_channels and len(values) not in (0, 1, self.image_channels):
                raise ValueError(f"{name} has {len(values)} values; give one, or one per channel "
                                 f"(image_channels {self.image_channels})")
            if name == "image_std" and any(v <= 0 for v in values):
                raise ValueError(f"image_std must be > 0, got {value}")
        names = [r.name for r in self.recipes]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe names must be unique within a model (got {names})")
        if self.onnx is not None:
            for recipe in self.recipes:
                if recipe.prune or recipe.distill or "torch" in recipe.runtimes:
                    raise ValueError(f"recipe {recipe.name!r}: an ONNX source has no torch module, so no prune, "
                                     "distill or torch runtime (use quantize and onnxruntime/openvino)")
        for recipe in self.recipes:
            if recipe.prune is not None:
                try:
                    recipe.prune.check_family(self.source_family)
                except InvalidInput as error:
                    raise ValueError(f"recipe {recipe.name!r}: {error}") from None
            if recipe.sequence is not None and self.source_family == Family.CNN:
                raise ValueError(f"recipe {recipe.name!r}: sequence (tokens per text) is for text models, not cnn")
            if recipe.sequence is not None and recipe.sequence.max_len > self.max_len:
                raise ValueError(f"recipe {recipe.name!r}: sequence.max_len {recipe.sequence.max_len} is above the "
                                 f"model's max_len {self.max_len}; a shorter sequence is the point")
        return self

    @property
    def source_family(self) -> Family:
        if self.zoo:
            return ZOO_FAMILIES[self.zoo]
        return Family.BERT if self.huggingface else self.family or Family.CNN


class MeasureConfig(StrictModel):
    """How hard to measure: kept small by default so a full sweep stays short on a small machine."""

    latency: LatencyConfig = Field(default_factory=lambda: LatencyConfig(
        warmup_runs=3, warmup_seconds=0.2, min_runs=20, min_seconds=0.5, max_seconds=5.0),
        description="warm-up and timing of each batch size (the harness's LatencyConfig)")
    eval_samples: int | None = Field(1000, ge=1, description="default seeded test subset for accuracy "
                                                             "(a model's eval_samples overrides it)")
    timeout_s: float = Field(600, gt=0, description="a measurement running longer is killed and recorded as failed")


class ExecutorConfig(StrictModel):
    """Where builds and measurements run (see docs/scale.md): here, or as tasks on a Ray cluster."""

    kind: Literal["local", "ray"] = Field("local", description="local: this machine (needs nothing); ray: a Ray "
                                                               "cluster (pip install 'edgeopt[ray]')")
    address: str | None = Field(None, description="ray: the cluster to join (auto, ray://head:10001); default "
                                                  "$RAY_ADDRESS, else Ray started on this machine")


class Config(StrictModel):
    """A whole sweep: models x recipes x runtimes x devices x batch sizes."""

    output: Path = Field(Path("edgeopt-out"), description="results.db, cache/, report.html/.md/.json go here")
    seed: int = Field(0, description="seeds data subsets, calibration and training")
    devices: list[str] = Field(default_factory=lambda: ["cpu-1t"], min_length=1,
                               description="device profiles (see `edgeopt bench profiles`); unavailable ones are "
                                           "skipped with the reason")
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    budget: Budget | None = Field(None, description="the report's recommendation uses this budget")
    models: dict[str, ModelConfig] = Field(min_length=1, description="model name -> where it comes from and "
                                                                     "its recipes")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="where builds and measurements "
                                                                                 "run (--executor overrides it)")

    @model_validator(mode="after")
    def _seed_steps(self) -> "Config":
        """The top-level seed seeds every step (training, calibration) unless the step sets its own; it is
        part of the step's parameters, so it is part of the build key."""
        for model in self.models.values():
            for recipe in model.recipes:
                for step in (recipe.prune, recipe.distill, recipe.quantize):
                    if step is not None and "seed" not in step.model_fields_set:
                        step.seed = self.seed
        return self

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(b < 1 for b in value):
            raise ValueError(f"batch sizes must be >= 1 (got {value})")
        return value

    @field_validator("models")
    @classmethod
    def _names(cls, value: dict[str, ModelConfig]) -> dict[str, ModelConfig]:
        bad = [n for n in value if not re.match(r"^[A-Za-z0-9][\w.-]*$", n)]
        if bad:
            raise ValueError(f"model names may use letters, digits, '.', '_', '-' (got {bad})")
        return value


# ---------------------------------------------------------------- loading


def load_config(source: str | Path | dict | None = None) -> Config:
    """A Config from a YAML file, a dict, or None (the built-in default); errors name the field."""
    if isinstance(source, Config):
        return source
    label = "config"
    if source is None:
        source = DEFAULT_CONFIG
    if isinstance(source, (str, Path)):
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise InvalidInput(f"{path}: no such config file (write a starter with `edgeopt init`)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise InvalidInput(f"{path}: not valid YAML: {error}") from None
        base = path.resolve().parent
    else:
        data, base = source, Path.cwd()
    if not isinstance(data, dict):
        raise InvalidInput(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(f"{label}: {format_validation_error(error, Config)}") from None
    return _resolve_paths(config, base)


def _resolve_paths(config: Config, base: Path) -> Config:
    """Relative paths in a config file are relative to that file, not to wherever the command runs."""
    def fix(path: Path | None) -> Path | None:
        return None if path is None or path.is_absolute() else base / path

    for model in config.models.values():
        if model.module and model.python_path is None:
            model.python_path = base
        for key in ("weights", "onnx", "huggingface", "python_path", "vocab", "tokenizer"):
            value = getattr(model, key)
            if value is not None and not value.is_absolute():
                setattr(model, key, fix(value))
        if model.dataset and ("/" in model.dataset or model.dataset.startswith(".")):
            candidate = Path(model.dataset).expanduser()
            model.dataset = str(candidate if candidate.is_absolute() else base / candidate)
    return config


def format_validation_error(error: ValidationError, root: type[BaseModel]) -> str:
    """One line per problem: the dotted field path, what is wrong, and for unknown keys the allowed ones."""
    lines = []
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"]]
        where = ".".join(loc) or "(top level)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            allowed = _allowed_keys(root, problem["loc"][:-1])
            message = f"unknown key; allowed: {', '.join(allowed)}" if allowed else "unknown key"
        elif problem["type"] == "missing":
            message = "required field missing"
        elif problem["type"] == "bool_not_number":
            pass  # the message already says what was expected and given
        elif problem["type"].startswith("value_error"):
            message = message.removeprefix("Value error, ")
        elif "input" in problem:
            expected = re.split(r", (?:got|unable) ", message.replace("Input should be", "expected"))[0]
            message = f"{expected}, got {_given(problem['input'])}"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)


def _given(value: Any) -> str:
    """A value as the YAML said it, with its type: `true (bool)`, `'abc' (str)`."""
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return f"{shown[:60]} ({type(value).__name__})"


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    """Walk the model classes along an error location to list the field names accepted there."""
    annotation: Any = root
    for part in loc:
        annotation = _unwrap(annotation, part)
        if annotation is None:
            return []
    model = _model_class(annotation)
    return list(model.model_fields) if model else []


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_class(arg)
        if found:
            return found
    return None


def _unwrap(annotation: Any, part: Any) -> Any:
    model = _model_class(annotation)
    origin = typing.get_origin(annotation)
    if origin in (list, dict) or (model is None and typing.get_args(annotation)):
        args = typing.get_args(annotation)
        if origin is list:
            return args[0]
        if origin is dict:
            return args[1]
        for arg in args:  # Optional[X] / unions
            found = _unwrap(arg, part)
            if found is not None:
                return found
        return None
    if model is not None and isinstance(part, str) and part in model.model_fields:
        return model.model_fields[part].annotation
    if model is not None and isinstance(part, str):  # a union member's tag, e.g. "function-after[...]"
        return model
    return None


def json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "edgeopt config"
    return schema


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False)
