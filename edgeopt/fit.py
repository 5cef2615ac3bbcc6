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
from edgeopt.recommend import ACCURACY_SLACK_PT, Budget, NearMiss, Pick, blockers, margins, pareto, recommend
from edgeopt.results import Row

FIT_PREFIX = "fit-"
STUDY_DB = "fit.db"
STRUCTURE_EVAL_SAMPLES = 256  # the structure's accuracy is not used; a few samples keep the harness's path
FINALISTS = 3  # best feasible trials re-measured with the full settings before one is picked
FINALIST_SLACK_PT = 1.0  # finalists: the most accurate trial and the fastest within this many points of it
SIDE_BY_SIDE_ROUNDS = 5  # the finalists and the default recipes' pick, timed in turns in fresh workers
EXHAUSTED_AFTER = 30  # consecutive repeated proposals that end a search
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
# Text models: tokens per text the deployed model takes, as shares of the source's max_len (a fixed input shape;
# fewer tokens run faster and truncate only the longest texts, which the accuracy then shows).
SEQUENCE_SHARES = (1.0, 0.875, 0.75, 0.625, 0.5)
QUANTIZE_DEFAULTS = {"samples": 512, "eval_samples": 500}


class SearchSpace:
    """What a trial may choose for one model: built from the family and the runtimes this device runs."""

    def __init__(self, family: Family, runtimes: list[str], max_train_samples: int | None = None,
                 max_len: int | None = None):
        self.family = family
        self.runtimes = runtimes
        self.archs = ["source", "prune", "distill"]
        self.cap = {} if max_train_samples is None else {"max_train_samples": max_train_samples}
        self.max_len = max_len if family != Family.CNN else None
        self.lengths = sorted({max(8, round(share * max_len)) for share in SEQUENCE_SHARES}) if self.max_len else []

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
        if self.lengths:
            trial.suggest_categorical("max_len", self.lengths)
        runtime = trial.suggest_categorical("runtime", self.runtimes)
        precision = trial.suggest_categorical(f"precision_{runtime}", self.precisions(runtime))
        if runtime == "onnxruntime" and precision == "int8-static":
            trial.suggest_categorical("calibration", CALIBRATIONS)
        return dict(trial.params)

    def probes(self) -> list[dict[str, Any]]:
        """The smallest structure on each runtime: if none of them fits, no structure in the space does."""
        shortest = {"max_len": self.lengths[0]} if self.lengths else {}
        if self.family == Family.BERT:  # a pruned 6-layer BERT is larger than the 2-layer student
            return [{"arch": "distill", "student": "bert", "bert_depth": 2} | shortest
                    | {"runtime": r, f"precision_{r}": self.precisions(r)[-1]} for r in self.runtimes]
        return [{"arch": "prune", "ratio": PRUNE_RATIOS[1]} | shortest | {"runtime": r,
                f"precision_{r}": self.precisions(r)[-1]} | ({"calibration": "minmax"} if r == "onnxruntime" else {})
                for r in self.runtimes]

    def neighbours(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The same choices one step along an ordered knob (tokens per text, pruning ratio): where the best
        feasible trial is, the next step trades a little speed for accuracy or the reverse, and the trained
        network is shared (tokens per text) or close (ratio)."""
        found = []
        if params.get("max_len") in self.lengths:
            at = self.lengths.index(params["max_len"])
            found += [params | {"max_len": self.lengths[i]} for i in (at - 1, at + 1) if 0 <= i < len(self.lengths)]
        if params.get("arch") == "prune":
            found += [params | {"ratio": round(params["ratio"] + step, 1)} for step in (-0.1, 0.1)
                      if PRUNE_RATIOS[0] <= round(params["ratio"] + step, 1) <= PRUNE_RATIOS[1]]
        return found

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
            fields["prune"] = {"ratio": round(params["ratio"], 2), "eval_samples": 1000, "val_samples": 1000,
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
        if params.get("max_len", self.max_len) != self.max_len:
            fields["sequence"] = {"max_len": params["max_len"]}
            slug.append(f"len{params['max_len']}")
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
                                   "measurement; the note says why), repeat (choices measured in an earlier "
                                   "trial) or running")
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
        source = ModelConfig(zoo=config.model)
        self.family = source.source_family
        self.space = SearchSpace(self.family, self._runtimes(), config.max_train_samples, source.max_len)
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
        return f"{self.config.model}-{sha256_json([space, self.space.runtimes, self.space.lengths])[:12]}"

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
        timeout = self._time_left(study)
        if not self._already_impossible(study) and (timeout is None or timeout > 0) and not self._enough(study):
            # no catch: failed builds and measurements are handled in the objective; anything else is a bug
            # or bad input, which must stop the search rather than fail every trial in a loop
            study.optimize(self._objective, timeout=timeout, callbacks=[self._after_trial])
        result = self._result(study)
        result.seconds = time.perf_counter() - started
        result.storage = str(self.output / STUDY_DB)
        return result

    def _enough(self, study) -> bool:
        """--trials counts complete and pruned trials: not a repeated proposal, nor one a kill interrupted (Optuna
        fails it and retries it)."""
        done = [t for t in study.trials
                if t.state.name in ("COMPLETE", "PRUNED") and "duplicate_of" not in t.user_attrs]
        return bool(self.config.trials) and len(done) >= self.config.trials

    def _exhausted(self, study) -> bool:
        """The sampler proposed only configurations it had measured, many times running: nothing new is left
        to try (a small space, or one the sampler has converged on)."""
        last = [t for t in study.trials if t.state.is_finished()][-EXHAUSTED_AFTER:]
        return len(last) == EXHAUSTED_AFTER and all("duplicate_of" in t.user_attrs for t in last)

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
        earlier = next((t for t in trial.study.get_trials(deepcopy=False) if _same(t.params, params)
                        and t.state.is_finished() and "duplicate_of" not in t.user_attrs), None)
        if earlier is not None:  # pruned, not its value again: a repeat must not make the sampler repeat it more
            trial.set_user_attr("duplicate_of", earlier.number)
            trial.set_user_attr("note", f"same choices as trial {earlier.number}: not measured again")
            raise optuna.TrialPruned()
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
        self._explore_around_best(study, trial)
        if self._already_impossible(study):
            self.progress("no structure fits the cost limits, even the smallest on each runtime: stopping")
            study.stop()
        elif self._exhausted(study):
            self.progress(f"the last {EXHAUSTED_AFTER} proposals were all measured before: stopping")
            study.stop()
        elif self._enough(study):
            study.stop()

    def _explore_around_best(self, study, trial) -> None:
        """A trial that is the new best feasible one queues its neighbours (next, before the sampler's own
        proposals): TPE samples each knob on its own and may never try the best recipe one step longer."""
        if not _feasible(trial):
            return
        best = max((t for t in study.get_trials(deepcopy=False) if _feasible(t)), key=lambda t: t.value or 0.0)
        if best.number != trial.number:
            return
        for params in self.space.neighbours(trial.params):
            if not any(_same(t.params, params) for t in study.get_trials(deepcopy=False)):
                study.enqueue_trial(params, user_attrs={"neighbour_of": trial.number}, skip_if_exists=True)

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
        baseline = [r for r in stored if r.model == self.config.model and not r.recipe.startswith(FIT_PREFIX)]
        default_picks = recommend(baseline, self.budget).picks
        result.winner, result.recipe, result.baseline = self._final(study, result, trained,
                                                                    default_picks[0] if default_picks else None)
        if result.winner is None:
            result.near_misses = result.near_misses or recommend(searched, self.budget).near_misses
        result.comparison = compare(result.winner, result.baseline, baseline, self.budget, self.output)
        if self.impossible:
            result.notes.append("impossible budget: the smallest structure on every runtime misses a cost limit "
                                "(measured before any training); see near_misses for what to relax")
        shown = {r.candidate_id: r for r in trained + baseline}  # the answer's rows with their side-by-side figures
        shown.update({p.row.candidate_id: p.row for p in (result.baseline, result.winner) if p is not None})
        result.report = str(self._report(result, list(shown.values())))
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
        if result.winner is not None and data.recommendation is not None:  # the search's answer, not a re-pick
            others = [p for p in data.recommendation.picks if p.family != result.winner.family]
            data.recommendation.picks = [result.winner, *others]
        section = (f"<h2>Search trials ({len(result.trials)}; short-schedule points are trials the pruner "
                   f"stopped)</h2>" + trials_plot(points, self.budget, pick))
        path = self.output / "report-fit.html"
        staging = path.with_suffix(".html.tmp")
        staging.write_text(render_html(data, section), encoding="utf-8")
        staging.replace(path)
        return path

    def _final(self, study, result: FitResult, searched: list[Row], default: Pick | None
               ) -> tuple[Pick | None, RecipeConfig | None, Pick | None]:
        """The answer, on figures that can be compared: the finalists (the most accurate feasible trial and the
        fastest ones as accurate as it) are re-measured with the default run's settings on the whole test split,
        then timed side by side with the default recipes' pick, in turns in fresh workers. The pick is
        recommend's among the finalists on those side-by-side latencies; the default pick is returned with them."""
        feasible = {t.user_attrs.get("candidate_id"): t for t in study.trials if _feasible(t)}
        rows = [r for r in searched if r.ok and r.candidate_id in feasible]
        recipes: dict[tuple[str, str], RecipeConfig] = {}
        if rows:
            for row in _most_accurate_then_fastest(rows, self.budget, FINALIST_SLACK_PT):
                recipe = RecipeConfig.model_validate(feasible[row.candidate_id].user_attrs["recipe"])
                if len(recipes) < FINALISTS:
                    recipes.setdefault((recipe.name, recipe.runtimes[0]), recipe)
        if not recipes:
            return None, None, default
        full = load_config(None).measure.model_copy(update={"eval_samples": None})
        finalists = []
        for (name, runtime), recipe in recipes.items():
            self.progress(f"re-measuring {name} on {runtime} with the full settings (whole test split)")
            finalists.append(self.measure(recipe, full))
        timed = self._side_by_side([r for r in finalists if r.ok] + ([default.row] if default else []),
                                   full.latency, result)
        finalists = [timed.get(r.candidate_id, r) for r in finalists]
        if default is not None and default.row.candidate_id in timed:
            default = next(iter(recommend([timed[default.row.candidate_id]], self.budget).picks), default)
        found = recommend(finalists, self.budget)
        if not found.feasible:
            result.notes.append(f"the {len(finalists)} best trials fitted in the search but none when re-measured")
            result.near_misses = found.near_misses
            return None, None, default
        row = min(_most_accurate_then_fastest(found.feasible, self.budget, ACCURACY_SLACK_PT),
                  key=lambda r: r.latency_ms(self.budget.percentile))
        p = self.budget.percentile
        reason = (f"fastest of the {len(found.feasible)} feasible finalists within {ACCURACY_SLACK_PT} pt of the "
                  f"most accurate on the whole test split (the same samples for all): {p} {row.latency_ms(p):.3g} "
                  f"ms side by side, accuracy {row.accuracy:.2%}")
        pick = Pick(family=row.family, row=row, reason=reason, margins=margins(row, self.budget))
        return pick, recipes[row.recipe, row.runtime], default

    def _side_by_side(self, rows: list[Row], latency, result: FitResult) -> dict[str, Row]:
        """The rows with latencies timed side by side (SIDE_BY_SIDE_ROUNDS rounds in turns; a note lists them)."""
        from edgeopt.benchmarks.profiles import get_profile
        from edgeopt.benchmarks.sweep import time_side_by_side
        from edgeopt.core.artifacts import Artifact

        found = {r.candidate_id: self._artifact_dir(r) for r in rows}
        missing = [f"{r.label} (no artifact at {r.artifact_path})" for r in rows if found[r.candidate_id] is None]
        if missing:
            result.notes.append("not timed side by side, its stored figures used: " + "; ".join(missing))
        rows = [r for r in rows if found[r.candidate_id] is not None]
        if len(rows) < 2:
            return {}
        pairs = [(Artifact.load(found[r.candidate_id], trust_code=True), r.runtime) for r in rows]
        stats = time_side_by_side(pairs, get_profile(self.budget.device), self.budget.batch, latency,
                                  SIDE_BY_SIDE_ROUNDS, progress=self.progress)
        p = self.budget.percentile
        timed, shown = {}, []
        for row, stat in zip(rows, stats):
            if isinstance(stat, str):
                shown.append(f"{row.label}: failed ({stat})")
                continue
            figures = {k: getattr(stat, k) for k in ("mean", "median", "p90", "p95", "p99", "min", "max", "std", "cv")}
            timed[row.candidate_id] = row.model_copy(update={
                "latency": figures, "median_ci_low": stat.median_ci_low, "median_ci_high": stat.median_ci_high,
                "noisy": stat.noisy})
            shown.append(f"{row.label} {timed[row.candidate_id].latency_ms(p):.4g} ms "
                         f"(measured alone {row.latency_ms(p):.4g})")
        result.notes.append(f"{p} latency timed side by side ({SIDE_BY_SIDE_ROUNDS} rounds in turns, fresh worker "
                            f"each; the figures the pick and the comparison use): " + "; ".join(shown))
        return timed

    def _artifact_dir(self, row: Row) -> Path | None:
        """Where a stored row's artifact is now: its recorded path (relative to where that run started), or the
        same build in this output's cache (run from another directory)."""
        from edgeopt.pipeline import CACHE_DIR

        if not row.artifact_path:
            return None
        recorded = Path(row.artifact_path)
        for path in (recorded, self.output / CACHE_DIR / recorded.name):
            if (path / "artifact.json").exists():
                return path
        return None


def _most_accurate_then_fastest(rows: list[Row], budget: Budget, slack_pt: float) -> list[Row]:
    """The most accurate row first, then every row within `slack_pt` points of it, fastest first.

    Point estimates, not recommend's confidence intervals: these rows were measured on the same test samples, so
    the noise in their difference is far below that of two independent accuracies, and the fit is after the most
    accurate model, not merely one that cannot be told apart from it."""
    best = max(rows, key=lambda r: (r.accuracy or 0, -r.latency_ms(budget.percentile)))
    close = [r for r in rows if r is not best and 100 * ((best.accuracy or 0) - (r.accuracy or 0)) <= slack_pt]
    return [best, *sorted(close, key=lambda r: r.latency_ms(budget.percentile))]


class TrialFailed(RuntimeError):
    """A trial's build or measurement failed (recorded on the trial; the search goes on)."""


def _constrain(trial, row: Row, budget: Budget) -> None:
    """Optuna's constraints: one per limit, 0 when met, its relative miss otherwise (> 0 is infeasible)."""
    for margin in margins(row, budget):
        trial.set_constraint(margin.constraint, margin.relative_miss)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same choices (Optuna's stepped floats come back as 0.30000000000000004)."""
    def rounded(params):
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in params.items()}

    return rounded(a) == rounded(b)


def _feasible(trial) -> bool:
    """Fully trained and within every limit of the budget."""
    return (trial.state.name == "COMPLETE" and trial.user_attrs.get("phase") == "full"
            and not any(v > 0 for v in _constraints(trial)))


def _constraints(trial) -> list[float]:
    return list(trial.constraints.values()) or [1.0]


def _failed(trial) -> bool:
    return bool(trial.user_attrs.get("failed")) or trial.state.name == "FAIL"


def _trial(t) -> Trial:
    figures = t.user_attrs.get("figures") or {}
    state = "failed" if _failed(t) else "repeat" if "duplicate_of" in t.user_attrs else t.state.name.lower()
    return Trial(number=t.number, state=state,
                 recipe=t.user_attrs.get("recipe", {}).get("name"), runtime=t.params.get("runtime"),
                 phase=t.user_attrs.get("phase"), note=t.user_attrs.get("note", ""),
                 feasible=_feasible(t),
                 candidate_id=t.user_attrs.get("candidate_id"), **figures)


def compare(winner: Pick | None, base: Pick | None, rows: list[Row], budget: Budget, output: Path) -> str:
    """How the winner compares with the default recipes' pick under the same budget (`rows`: the default
    recipes' stored results)."""
    if not [r for r in rows if r.device == budget.device]:
        return (f"no default-recipe results for this model on {budget.device} in {output}; run "
                f"`edgeopt run -o {output}` to compare with them")
    if base is None:
        return "none of the default recipes stored fits this budget"
    if winner is None:
        return f"the default recipes' {base.row.label} fits; the search found nothing better that fits"
    p = budget.percentile
    gain = 100 * ((winner.row.accuracy or 0) - (base.row.accuracy or 0))
    speed = base.row.latency_ms(p) / winner.row.latency_ms(p)
    return (f"{winner.row.label} vs default {base.row.label}: accuracy {gain:+.2f} pt, "
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
