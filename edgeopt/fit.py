"""`fit`: search recipes (prune / distill, precision, runtime) for the most accurate model that fits a budget.

Optuna proposes; the pipeline builds and measures. Each trial is a RecipeConfig run through `run_sweep` (the same
content-addressed cache, harness, candidate ids and results store as `edgeopt run`), in up to three phases:

1. structure: the recipe with almost no training (latency, memory and size do not depend on trained weights);
   a structure beyond the budget's cost limits is rejected here, before any fine-tuning or distillation.
2. short: a short training schedule; its accuracy goes to Optuna's pruner, which stops unpromising trials.
3. full: the full schedule; the trial's value is this accuracy, its budget margins Optuna's constraints.

Optuna's study lives in `fit.db` beside `results.db`, so a killed search resumes (finished trials are kept, and a
recipe measured before comes back from the store). The best feasible trials are re-measured with the default
run's measurement settings and accuracy on the whole test split before one is picked, so a lucky measurement
does not win. Recipes whose name starts with `fit-` are the search's; the others in the store are compared with.
"""
from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, Field, ValidationError

from edgeopt.config import Config, ExecutorConfig, MeasureConfig, ModelConfig, RecipeConfig, ZooName, \
    format_validation_error, load_config
from edgeopt.core.artifacts import Family
from edgeopt.core.errors import InvalidInput
from edgeopt.core.hashing import sha256_json
from edgeopt.core.strict import StrictModel
from edgeopt.recommend import Budget, NearMiss, Pick, blockers, margins, pareto, recommend
from edgeopt.results import Row

FIT_PREFIX = "fit-"
STUDY_DB = "fit.db"
STRUCTURE_EVAL_SAMPLES = 256  # the structure's accuracy is not used; a few samples keep the harness's path
FINALISTS = 3  # best feasible trials re-measured with the full settings before one is picked
COST_LIMITS = ("max_latency_ms", "max_memory_mb", "max_size_mb")

# ---------------------------------------------------------------- the search space, as data

# Students per family with the knobs searched for each (DistillConfig fields).
STUDENTS: dict[Family, dict[str, dict[str, list]]] = {
    Family.CNN: {"mobilenetv2": {"width": [0.25, 0.5, 1.0]}, "squeezenet": {"width": [0.5, 1.0]}},
    Family.LSTM: {"gru": {"width": [0.5, 1.0], "depth": [1, 2]}, "lstm": {"width": [0.5, 1.0], "depth": [1, 2]},
                  "textcnn": {"width": [0.5, 1.0]}},
    Family.BERT: {"bert": {"depth": [2, 3, 4]}, "textcnn": {"width": [0.5, 1.0]}, "bilstm": {"width": [0.5, 1.0]}},
}
# Full training schedules (TrainConfig fields): distillation per family (as the default config trains its
# students), pruning recovery per family.
DISTILL_TRAIN: dict[Family, dict[str, Any]] = {
    Family.CNN: {"epochs": 3, "lr": 0.004, "batch_size": 128, "augment": True},
    Family.LSTM: {"epochs": 3, "lr": 0.002},
    Family.BERT: {"epochs": 3, "lr": 1e-4, "batch_size": 32, "weight_decay": 0.01, "bf16": True},
}
PRUNE_TRAIN: dict[Family, dict[str, Any]] = {
    Family.CNN: {"epochs": 2, "lr": 0.001},
    Family.LSTM: {"epochs": 2, "lr": 0.001},
    Family.BERT: {"epochs": 1, "lr": 5e-5, "batch_size": 32},
}
SHORT_SCHEDULE = {"epochs": 1, "max_train_samples": 5000}
STRUCTURE_SCHEDULE = {"epochs": 1, "max_train_samples": 256}
PRUNE_RATIOS = (0.1, 0.8)
# Precision variants per runtime, as the recipe fields that make them (dynamic INT8 is for the text families).
PRECISIONS: dict[str, dict[str, dict[str, Any]]] = {
    "torch": {"fp32": {}},
    "onnxruntime": {"fp32": {}, "fp16": {"quantize": {"mode": "fp16"}},
                    "int8-dynamic": {"quantize": {"mode": "dynamic"}}, "int8-static": {"quantize": {"mode": "static"}}},
    "openvino": {"fp32": {}, "fp16": {"precision": "fp16"}, "int8-static": {"quantize": {"mode": "static"}}},
    "executorch": {"fp32": {}, "int8": {"precision": "int8"}},
    "litert": {"fp32": {}, "int8": {"precision": "int8"}},
    "tensorrt": {"fp32": {}, "fp16": {"precision": "fp16"}, "int8": {"precision": "int8"}},
}
CALIBRATIONS = ["minmax", "entropy", "percentile"]
QUANTIZE_DEFAULTS = {"samples": 512, "eval_samples": 500}


class SearchSpace:
    """What a trial may choose for one model: built from the family and the runtimes this device runs."""

    def __init__(self, family: Family, runtimes: list[str], max_train_samples: int | None = None):
        self.family = family
        self.runtimes = runtimes
        self.archs = ["source", "prune", "distill"]
        self.cap = {} if max_train_samples is None else {"max_train_samples": max_train_samples}

    def precisions(self, runtime: str) -> list[str]:
        names = list(PRECISIONS[runtime])
        return [n for n in names if n != "int8-dynamic" or self.family != Family.CNN]

    def sample(self, trial) -> dict[str, Any]:
        """The trial's choices (Optuna's define-by-run: a knob exists only where it applies)."""
        arch = trial.suggest_categorical("arch", self.archs)
        if arch == "prune":
            trial.suggest_float("ratio", *PRUNE_RATIOS, step=0.1)
            if self.family == Family.BERT:
                trial.suggest_float("head_ratio", 0.0, 0.5, step=0.25)
        elif arch == "distill":
            student = trial.suggest_categorical("student", list(STUDENTS[self.family]))
            for knob, values in STUDENTS[self.family][student].items():
                trial.suggest_categorical(f"{student}_{knob}", values)
        runtime = trial.suggest_categorical("runtime", self.runtimes)
        precision = trial.suggest_categorical(f"precision_{runtime}", self.precisions(runtime))
        if runtime == "onnxruntime" and precision == "int8-static":
            trial.suggest_categorical("calibration", CALIBRATIONS)
        return dict(trial.params)

    def probes(self) -> list[dict[str, Any]]:
        """The smallest structure on each runtime: if none of them fits, no structure in the space does."""
        if self.family == Family.BERT:  # a pruned 6-layer BERT is larger than the 2-layer student
            return [{"arch": "distill", "student": "bert", "bert_depth": 2, "runtime": r,
                     f"precision_{r}": self.precisions(r)[-1]} for r in self.runtimes]
        return [{"arch": "prune", "ratio": PRUNE_RATIOS[1], "runtime": r, f"precision_{r}": self.precisions(r)[-1]}
                | ({"calibration": "minmax"} if r == "onnxruntime" else {}) for r in self.runtimes]

    def trains(self, params: dict[str, Any]) -> bool:
        return params["arch"] != "source"

    def recipe(self, params: dict[str, Any], phase: str) -> RecipeConfig:
        """The RecipeConfig of a trial's choices for one phase: structure, short or full (training differs)."""
        runtime = params["runtime"]
        precision = params[f"precision_{runtime}"]
        fields: dict[str, Any] = {"runtimes": [runtime]}
        slug = ["src"]
        schedule = {"structure": STRUCTURE_SCHEDULE, "short": SHORT_SCHEDULE | self.cap, "full": self.cap}[phase]
        if params["arch"] == "prune":
            train = PRUNE_TRAIN[self.family] | schedule
            fields["prune"] = {"ratio": params["ratio"], "eval_samples": 1000, "val_samples": 1000,
                               "finetune": None if phase == "structure" else train}
            slug = [f"p{round(100 * params['ratio'])}"]
            if "head_ratio" in params:
                fields["prune"]["head_ratio"] = params["head_ratio"]
                slug.append(f"h{round(100 * params['head_ratio'])}")
        elif params["arch"] == "distill":
            student = params["student"]
            knobs = {k: params[f"{student}_{k}"] for k in STUDENTS[self.family][student]}
            fields["distill"] = {"student": student, **knobs, "baseline": False, "eval_samples": 1000,
                                 "val_samples": 1000, "train": DISTILL_TRAIN[self.family] | schedule}
            slug = [student] + [f"{k[0]}{v:g}" for k, v in knobs.items()]
        fields.update({k: dict(v) if isinstance(v, dict) else v for k, v in PRECISIONS[runtime][precision].items()})
        if "quantize" in fields:
            fields["quantize"].update(QUANTIZE_DEFAULTS)
            if "calibration" in params:
                fields["quantize"]["calibration"] = params["calibration"]
        slug.append(precision + (f"-{params['calibration']}" if "calibration" in params else ""))
        if phase != "full":
            slug.append(phase)
        return RecipeConfig(name=FIT_PREFIX + "-".join(slug), **fields)


# ---------------------------------------------------------------- settings and result


class FitConfig(StrictModel):
    """What to search for: a zoo model, a budget with a device, and how long to search."""

    model: ZooName = Field(description="a zoo model (cnn, resnet, lstm, bert)")
    budget: Budget
    trials: int | None = Field(None, ge=1, description="stop after this many finished trials (resumed ones count)")
    time_budget_s: float | None = Field(None, gt=0, description="stop starting trials after this many seconds "
                                                                "(resumed runs' trials count)")
    jobs: int = Field(1, ge=1, description="parallel build processes (measurements stay serial)")
    runtimes: list[str] | None = Field(None, min_length=1, description="search only these runtimes (default: "
                                                                       "every one the device runs)")
    max_train_samples: int | None = Field(None, ge=1, description="cap the training of every schedule (a quick "
                                                                  "search)")
    output: Path = Field(Path("edgeopt-out"), description="results.db, cache/ and fit.db (shared with `run`)")
    seed: int = 0
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="where each trial's builds and "
                                                                                 "measurements run")


class Trial(BaseModel):
    """One trial: its recipe, how far it got and why it stopped there, and its last measured figures."""

    number: int
    state: str = Field(description="complete, pruned (short schedule not promising), failed (build or "
                                   "measurement; the note says why) or running")
    recipe: str | None = None
    runtime: str | None = None
    phase: str | None = Field(None, description="last phase measured: structure, short or full")
    feasible: bool = False
    note: str = ""
    accuracy: float | None = None
    latency_ms: float | None = None
    memory_mb: float | None = None
    size_mb: float | None = None
    candidate_id: str | None = None


class FitResult(BaseModel):
    """The answer: the best feasible artifact (re-measured), the frontier found, the default run's best under
    the same budget, and when nothing fits the nearest candidates with what to relax."""

    model: str
    budget: Budget
    winner: Pick | None = Field(None, description="re-measured with full settings; row.artifact_path is the model")
    recipe: RecipeConfig | None = Field(None, description="the winner's recipe (put it in a config to rebuild it)")
    baseline: Pick | None = Field(None, description="the default recipes' pick under the same budget, if stored")
    comparison: str = ""
    frontier: list[Row] = Field(default_factory=list, description="measured Pareto frontier, accuracy vs latency")
    near_misses: list[NearMiss] = Field(default_factory=list)
    impossible: bool = Field(False, description="no structure met the cost limits (found before any training)")
    trials: list[Trial] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    study: str = ""
    storage: str = ""
    report: str | None = Field(None, description="HTML report: the answer, the trials plot, every candidate")

    @property
    def ok(self) -> bool:
        return self.winner is not None

    def relax(self) -> list[str]:
        """What to relax, one line per near miss (recommend's wording)."""
        return [f"{m.row.label}: " + "; ".join(b.describe() for b in m.blockers) for m in self.near_misses]


# ---------------------------------------------------------------- the search


class Search:
    """One budget's search over one model; `run` drives Optuna, `measure` is the one way a recipe is measured."""

    def __init__(self, config: FitConfig, progress: Callable[[str], None] | None = None):
        self.config = config
        self.budget = config.budget
        self.progress = progress or (lambda message: None)
        self.output = Path(config.output)
        self.family = ModelConfig(zoo=config.model).source_family
        self.space = SearchSpace(self.family, self._runtimes(), config.max_train_samples)
        self.impossible = False

    def _config(self, recipe: RecipeConfig, measure: MeasureConfig) -> Config:
        return Config(output=self.output, seed=self.config.seed, devices=[self.budget.device],
                      batch_sizes=[self.budget.batch], measure=measure, executor=self.config.executor,
                      models={self.config.model: ModelConfig(zoo=self.config.model, recipes=[recipe])})

    def _runtimes(self) -> list[str]:
        """The runtimes the plan keeps on this device (make_plan skips the others with a note)."""
        from edgeopt.pipeline import make_plan
        from edgeopt.runtimes import list_runtimes

        known = [r for r in PRECISIONS if r in list_runtimes()]
        unknown = sorted(set(self.config.runtimes or []) - set(known))
        if unknown:
            raise InvalidInput(f"runtime {', '.join(unknown)}: unknown; expected some of {', '.join(known)}")
        asked = self.config.runtimes or known
        plan = make_plan(self._config(RecipeConfig(name="probe", runtimes=asked), MeasureConfig()))
        runtimes = [c.runtime for c in plan.candidates]
        if not runtimes:
            raise InvalidInput(f"device {self.budget.device}: none of {', '.join(asked)} runs there "
                               f"({'; '.join(plan.notes)})")
        return runtimes

    def measure(self, recipe: RecipeConfig, measure: MeasureConfig) -> Row:
        """Build (cached) and measure one recipe through run_sweep; the store resumes what it has."""
        from edgeopt.pipeline import run_sweep

        rows = run_sweep(self._config(recipe, measure), jobs=self.config.jobs).rows
        if not rows:
            raise InvalidInput(f"recipe {recipe.name}: nothing planned on {self.budget.device}")
        return rows[0]

    @property
    def study_name(self) -> str:
        """One study per model, budget, seed and search space (Optuna cannot change a parameter's choices within
        a study): the same command resumes it; another budget, or a runtime installed since, starts afresh."""
        space = self.config.model_dump(mode="json", include={"budget", "seed", "max_train_samples"})
        return f"{self.config.model}-{sha256_json([space, self.space.runtimes])[:12]}"

    def run(self) -> FitResult:
        import optuna

        started = time.perf_counter()
        self.output.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{(self.output / STUDY_DB).resolve()}", heartbeat_interval=5, grace_period=20,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        study = optuna.create_study(storage=storage, study_name=self.study_name, load_if_exists=True,
                                    direction="maximize",
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
        # seeded by how far the search got, so a resumed search does not replay the first run's proposals
        study.sampler = optuna.samplers.TPESampler(seed=self.config.seed + len(study.trials), n_startup_trials=8)
        if not study.trials:
            for params in self.space.probes():
                study.enqueue_trial(params)
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        callbacks = [self._after_trial]
        if self.config.trials:
            callbacks.append(optuna.study.MaxTrialsCallback(self.config.trials, states=finished))
        timeout = self._time_left(study)
        if not self._already_impossible(study) and (timeout is None or timeout > 0) and not (
                self.config.trials and sum(t.state in finished for t in study.trials) >= self.config.trials):
            # no catch: failed builds and measurements are handled in the objective; anything else is a bug
            # or bad input, which must stop the search rather than fail every trial in a loop
            study.optimize(self._objective, n_trials=self.config.trials, timeout=timeout, callbacks=callbacks)
        result = self._result(study)
        result.seconds = time.perf_counter() - started
        result.storage = str(self.output / STUDY_DB)
        return result

    def _time_left(self, study) -> float | None:
        """The time budget minus what earlier (resumed) runs of this search spent on their trials."""
        if self.config.time_budget_s is None:
            return None
        spent = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials
                    if t.datetime_complete and t.datetime_start)
        return self.config.time_budget_s - spent

    # -------------------------------------------------------- one trial

    def _objective(self, trial) -> float:
        """A failed build or measurement ends the trial as infeasible (not Optuna's FAIL, which its sampler
        ignores), so the search learns to avoid what does not work here."""
        try:
            return self._run_trial(trial)
        except TrialFailed:
            return 0.0

    def _run_trial(self, trial) -> float:
        import optuna

        params = self.space.sample(trial)
        full = self.space.recipe(params, "full")
        trial.set_user_attr("recipe", full.model_dump(mode="json", exclude_none=True))
        search = MeasureConfig()
        if self.space.trains(params):
            row = self._phase(trial, "structure", self.space.recipe(params, "structure"),
                              search.model_copy(update={"eval_samples": STRUCTURE_EVAL_SAMPLES}))
            over = [m for m in blockers(row, self.budget) if m.constraint in COST_LIMITS]
            if over:  # beyond the cost limits whatever the weights: no training is spent on it
                trial.set_user_attr("note", "rejected on structure: " + "; ".join(m.describe() for m in over))
                trial.set_user_attr("rejected", True)
                _constrain(trial, row, self.budget)
                return row.accuracy or 0.0
            row = self._phase(trial, "short", self.space.recipe(params, "short"), search)
            trial.report(row.accuracy or 0.0, 0)
            if trial.should_prune():
                trial.set_user_attr("note", f"short schedule {row.accuracy:.2%}: below the median, not trained fully")
                _constrain(trial, row, self.budget)
                raise optuna.TrialPruned()
        row = self._phase(trial, "full", full, search)
        _constrain(trial, row, self.budget)
        missed = blockers(row, self.budget)
        trial.set_user_attr("note", "; ".join(m.describe() for m in missed) if missed else "fits")
        return row.accuracy or 0.0

    def _phase(self, trial, phase: str, recipe: RecipeConfig, measure: MeasureConfig) -> Row:
        """Measure one phase of a trial and keep its figures on the trial; a failure fails the trial."""
        row = self.measure(recipe, measure)
        trial.set_user_attr("phase", phase)
        trial.set_user_attr("candidate_id", row.candidate_id)
        trial.set_user_attr("figures", {"accuracy": row.accuracy, "latency_ms": row.latency_ms(self.budget.percentile),
                                        "memory_mb": row.memory_mb, "size_mb": row.size_mb})
        if not row.ok:
            trial.set_user_attr("note", f"{phase} failed: {row.error}")
            trial.set_user_attr("failed", True)
            _constrain(trial, row, self.budget)  # unmeasured: every limit missed
            raise TrialFailed(f"{recipe.name} on {row.runtime}: {row.error}")
        return row

    def _after_trial(self, study, trial) -> None:
        attrs = trial.user_attrs
        figures = attrs.get("figures") or {}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if v is not None)
        self.progress(f"trial {trial.number} {trial.state.name.lower()}: {attrs.get('recipe', {}).get('name', '?')} "
                      f"on {trial.params.get('runtime', '?')} [{attrs.get('phase', '-')}] {shown} - "
                      f"{attrs.get('note', '')}")
        if self._already_impossible(study):
            self.progress("no structure fits the cost limits, even the smallest on each runtime: stopping")
            study.stop()

    def _already_impossible(self, study) -> bool:
        """True once every probe (the smallest structure per runtime) was measured and rejected."""
        count = len(self.space.probes())
        probes = [t for t in study.trials if t.number < count]
        done = len(probes) == count and all(t.state.is_finished() for t in probes)
        rejected = [t for t in probes if t.user_attrs.get("rejected")]
        trained = any(t.user_attrs.get("phase") in ("short", "full") for t in study.trials)
        self.impossible = (done and bool(rejected) and not trained
                           and all(t.user_attrs.get("rejected") or _failed(t) for t in probes))
        return self.impossible

    # -------------------------------------------------------- the answer

    def _result(self, study) -> FitResult:
        from edgeopt.pipeline import RESULTS_DB
        from edgeopt.results import rows_of
        from edgeopt.store import ResultStore

        trials = [_trial(t) for t in study.trials if t.state.name != "WAITING"]  # queued probes not yet run
        result = FitResult(model=self.config.model, budget=self.budget, trials=trials, study=self.study_name,
                           impossible=self.impossible)
        ids = [t.candidate_id for t in trials if t.candidate_id]
        with ResultStore(self.output / RESULTS_DB) as store:
            measured = rows_of(store.measurements(candidate_id=ids), latest_only=False) if ids else []
            stored = rows_of(store.measurements(latest=True))
        last = {r.candidate_id: r for r in measured}
        searched = [last[t.candidate_id] for t in trials if t.candidate_id in last]
        trained = [r for r in searched if not r.recipe.endswith(("-structure", "-short"))]
        result.frontier = pareto([r for r in trained if r.ok], f"latency:{self.budget.percentile}")
        result.winner, result.recipe = self._final(study, result)
        if result.winner is None:
            result.near_misses = recommend(searched, self.budget).near_misses
        baseline = [r for r in stored if r.model == self.config.model and not r.recipe.startswith(FIT_PREFIX)]
        result.baseline, result.comparison = compare(result.winner, baseline, self.budget, self.output)
        if self.impossible:
            result.notes.append("impossible budget: the smallest structure on every runtime misses a cost limit "
                                "(measured before any training); see near_misses for what to relax")
        finals = [result.winner.row] if result.winner else []
        result.report = str(self._report(result, trained + baseline + finals))
        return result

    def _report(self, result: FitResult, rows: list[Row]) -> Path:
        """report-fit.html: the run report's page for these rows, with the trials plotted after the answer."""
        from edgeopt.report import build_report, render_html
        from edgeopt.report.html import trials_plot

        frontier = {r.candidate_id for r in result.frontier}
        points = [(t.number, t.latency_ms, t.accuracy, f"{t.recipe} {t.runtime}", t.candidate_id in frontier)
                  for t in result.trials if t.phase in ("short", "full") and t.accuracy and t.latency_ms]
        pick = next((t.number for t in result.trials if result.winner and t.phase == "full"
                     and (t.recipe, t.runtime) == (result.winner.row.recipe, result.winner.row.runtime)), None)
        data = build_report(rows, budget=self.budget, title=f"edgeopt fit {self.config.model}",
                            notes=result.notes + [result.comparison])
        section = (f"<h2>Search trials ({len(result.trials)}; short-schedule points are trials the pruner "
                   f"stopped)</h2>" + trials_plot(points, self.budget, pick))
        path = self.output / "report-fit.html"
        staging = path.with_suffix(".html.tmp")
        staging.write_text(render_html(data, section), encoding="utf-8")
        staging.replace(path)
        return path

    def _final(self, study, result: FitResult) -> tuple[Pick | None, RecipeConfig | None]:
        """Re-measure the best feasible trials with the default run's settings and the whole test split; the
        pick is recommend's among those re-measured rows."""
        complete = [t for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs.get("phase") == "full"
                    and not any(v > 0 for v in _constraints(t))]
        recipes: dict[tuple[str, str], RecipeConfig] = {}  # distinct (recipe, runtime): TPE repeats proposals
        for t in sorted(complete, key=lambda t: -(t.value or 0)):
            recipe = RecipeConfig.model_validate(t.user_attrs["recipe"])
            recipes.setdefault((recipe.name, recipe.runtimes[0]), recipe)
        recipes = dict(list(recipes.items())[:FINALISTS])
        if not recipes:
            return None, None
        full = load_config(None).measure.model_copy(update={"eval_samples": None})
        rows = []
        for (name, runtime), recipe in recipes.items():
            self.progress(f"re-measuring {name} on {runtime} with the full settings (whole test split)")
            rows.append(self.measure(recipe, full))
        picks = recommend(rows, self.budget).picks
        if not picks:
            result.notes.append(f"the {len(rows)} best trials fitted in the search but none when re-measured")
            result.near_misses = recommend(rows, self.budget).near_misses
            return None, None
        return picks[0], recipes[picks[0].row.recipe, picks[0].row.runtime]


class TrialFailed(RuntimeError):
    """A trial's build or measurement failed (recorded on the trial; the search goes on)."""


def _constrain(trial, row: Row, budget: Budget) -> None:
    """Optuna's constraints: one per limit, 0 when met, its relative miss otherwise (> 0 is infeasible)."""
    for margin in margins(row, budget):
        trial.set_constraint(margin.constraint, margin.relative_miss)


def _constraints(trial) -> list[float]:
    return list(trial.constraints.values()) or [1.0]


def _failed(trial) -> bool:
    return bool(trial.user_attrs.get("failed")) or trial.state.name == "FAIL"


def _trial(t) -> Trial:
    figures = t.user_attrs.get("figures") or {}
    return Trial(number=t.number, state="failed" if _failed(t) else t.state.name.lower(),
                 recipe=t.user_attrs.get("recipe", {}).get("name"), runtime=t.params.get("runtime"),
                 phase=t.user_attrs.get("phase"), note=t.user_attrs.get("note", ""),
                 feasible=t.state.name == "COMPLETE" and not any(v > 0 for v in _constraints(t)),
                 candidate_id=t.user_attrs.get("candidate_id"), **figures)


def compare(winner: Pick | None, rows: list[Row], budget: Budget, output: Path) -> tuple[Pick | None, str]:
    """The default recipes' pick under the same budget (from the same store) and how the winner compares."""
    if not [r for r in rows if r.device == budget.device]:
        return None, (f"no default-recipe results for this model on {budget.device} in {output}; run "
                      f"`edgeopt run -o {output}` to compare with them")
    picks = recommend(rows, budget).picks
    if not picks:
        return None, "none of the default recipes stored fits this budget"
    base = picks[0]
    if winner is None:
        return base, f"the default recipes' {base.row.label} fits; the search found nothing better that fits"
    p = budget.percentile
    gain = 100 * ((winner.row.accuracy or 0) - (base.row.accuracy or 0))
    speed = base.row.latency_ms(p) / winner.row.latency_ms(p)
    return base, (f"{winner.row.label} vs default {base.row.label}: accuracy {gain:+.2f} pt, "
                  f"{p} latency {speed:.2f}x lower ({winner.row.latency_ms(p):.4g} vs {base.row.latency_ms(p):.4g} ms)")


def parse_duration(text: str | float | None) -> float | None:
    """Seconds from `90`, `90s`, `20m`, `1.5h`."""
    if text is None or isinstance(text, (int, float)):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match:
        raise InvalidInput(f"time budget {text!r}: expected a duration like 90s, 20m or 1.5h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def fit(model: str, budget: Budget, *, trials: int | None = None, time_budget: str | float | None = None,
        jobs: int = 1, output: str | Path = "edgeopt-out", seed: int = 0, runtimes: list[str] | None = None,
        max_train_samples: int | None = None, progress: Callable[[str], None] | None = None,
        executor: ExecutorConfig | None = None) -> FitResult:
    """Search `model`'s recipes for the most accurate artifact that fits `budget` (which names the device).

    Stops after `trials` finished trials or `time_budget` (`20m`, or seconds), whichever comes first (20 trials
    when neither is given); re-running the same call resumes the search. Trials are built and measured on
    `executor` (this machine by default; a Ray cluster, with Optuna's storage kept by this driver).
    """
    try:
        config = FitConfig(model=model, budget=budget, trials=trials if trials or time_budget else 20,
                           time_budget_s=parse_duration(time_budget), jobs=jobs, output=Path(output), seed=seed,
                           runtimes=runtimes, max_train_samples=max_train_samples,
                           executor=executor or ExecutorConfig())
    except ValidationError as error:
        raise InvalidInput(f"fit: {format_validation_error(error, FitConfig)}") from None
    if budget.device is None:
        raise InvalidInput("fit: the budget needs a device (e.g. --device cpu-1t)")
    from edgeopt.benchmarks.profiles import get_profile

    get_profile(budget.device)  # an unknown profile is named before anything is planned
    if not any(name in COST_LIMITS for name, _, _ in budget.limits()):
        raise InvalidInput("fit: give at least one of --max-latency-ms, --max-memory-mb, --max-size-mb")
    return Search(config, progress).run()
