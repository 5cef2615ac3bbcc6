"""`edgeopt fit`: the search space makes recipes the pipeline plans, a tiny real search on the zoo CNN finds a
re-measured feasible winner, an impossible budget stops after the structural phase, a killed search resumes."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from edgeopt.config import Config, ModelConfig  # noqa: E402
from edgeopt.core.artifacts import Family  # noqa: E402
from edgeopt.core.errors import InvalidInput  # noqa: E402
from edgeopt.fit import PRECISIONS, STUDENTS, SearchSpace, fit, parse_duration  # noqa: E402
from edgeopt.recommend import Budget, margins  # noqa: E402

EDGEOPT = str(Path(sys.executable).with_name("edgeopt"))
ZOO = {Family.CNN: "cnn", Family.LSTM: "lstm", Family.BERT: "bert"}
QUICK = ["--runtime", "onnxruntime", "--max-train-samples", "256"]


def _choices(space: SearchSpace) -> list[dict]:
    """Every arch x runtime x precision the space can propose (one student knob setting each)."""
    archs = [{"arch": "source"}, {"arch": "prune", "ratio": 0.3, "head_ratio": 0.25}]
    for student, knobs in STUDENTS[space.family].items():
        archs.append({"arch": "distill", "student": student} | {f"{student}_{k}": v[0] for k, v in knobs.items()})
    found = []
    for arch in archs:
        for runtime in space.runtimes:
            for precision in space.precisions(runtime):
                params = arch | {"runtime": runtime, f"precision_{runtime}": precision}
                if arch["arch"] == "prune" and space.family != Family.BERT:
                    params.pop("head_ratio")
                if runtime == "onnxruntime" and precision == "int8-static":
                    params["calibration"] = "entropy"
                found.append(params)
    return found


@pytest.mark.parametrize("family", list(ZOO))
def test_every_choice_is_a_recipe_the_pipeline_plans(family):
    """Each proposal, in each phase, is a RecipeConfig that validates and plans to exactly one candidate."""
    from edgeopt.pipeline import make_plan

    space = SearchSpace(family, ["torch", "onnxruntime", "openvino"])
    names = set()
    for params in _choices(space):
        for phase in ("structure", "short", "full"):
            recipe = space.recipe(params, phase)
            assert recipe.name.startswith("fit-") and recipe.runtimes == [params["runtime"]]
            config = Config(devices=["cpu-1t"], models={ZOO[family]: ModelConfig(zoo=ZOO[family], recipes=[recipe])})
            assert len(make_plan(config).candidates) == 1, recipe
            names.add(recipe.name + params["runtime"])
            step = recipe.prune or recipe.distill
            if phase == "structure" and recipe.prune:
                assert recipe.prune.finetune is None  # structure: no recovery training at all
            elif step is not None:
                train = step.finetune if recipe.prune else step.train
                assert train.max_train_samples == (None if phase == "full" else 5000 if phase == "short" else 256)
    assert len(names) == 3 * len(_choices(space))  # distinct choices never share a recipe name


def test_probes_are_the_smallest_structures():
    space = SearchSpace(Family.CNN, ["onnxruntime", "openvino"])
    probes = space.probes()
    assert [p["runtime"] for p in probes] == ["onnxruntime", "openvino"]
    assert all(p["ratio"] == 0.8 and p[f"precision_{p['runtime']}"].startswith("int8") for p in probes)
    assert "int8-dynamic" not in space.precisions("onnxruntime")  # dynamic INT8 is for the text families
    assert "int8-dynamic" in SearchSpace(Family.LSTM, ["onnxruntime"]).precisions("onnxruntime")
    assert set(PRECISIONS["openvino"]) == {"fp32", "fp16", "int8-static"}


def test_text_searches_choose_the_sequence_length():
    """Text models: tokens per text is a knob (a fixed input shape); the probes take the shortest."""
    space = SearchSpace(Family.BERT, ["onnxruntime"], max_len=64)
    assert space.lengths == [32, 40, 48, 56, 64]
    params = {"arch": "source", "max_len": 48, "runtime": "onnxruntime", "precision_onnxruntime": "int8-dynamic"}
    recipe = space.recipe(params, "full")
    assert recipe.sequence.max_len == 48 and recipe.name == "fit-src-len48-int8-dynamic"
    assert space.recipe(params | {"max_len": 64}, "full").sequence is None  # the source's own length
    assert all(p["max_len"] == 32 for p in space.probes())
    assert SearchSpace(Family.CNN, ["onnxruntime"], max_len=64).lengths == []


def test_a_repeated_proposal_is_not_measured_again(tmp_path, monkeypatch):
    """A proposal measured before becomes a 'repeat' (pruned: not measured, not counted against --trials), and
    a search whose sampler proposes nothing new stops."""
    from edgeopt import fit as fit_module
    from edgeopt.results import Row

    only = {"arch": "source", "runtime": "onnxruntime", "precision_onnxruntime": "fp32"}
    measured = []

    def measure(self, recipe, settings):
        measured.append(recipe.name)
        return Row(candidate_id=f"cnn/{recipe.name}#{len(measured)}", model="cnn", recipe=recipe.name, family="cnn",
                   format="onnx", precision="fp32", runtime="onnxruntime", device="cpu-1t", batch_size=1,
                   latency={"p95": 0.5}, accuracy=0.9, accuracy_samples=1000, memory_mb=100, size_mb=1)

    monkeypatch.setattr(fit_module.Search, "measure", measure)
    monkeypatch.setattr(fit_module.SearchSpace, "probes", lambda self: [only])
    monkeypatch.setattr(fit_module.SearchSpace, "sample",
                        lambda self, trial: {k: trial.suggest_categorical(k, [v]) for k, v in only.items()})
    monkeypatch.setattr(fit_module, "EXHAUSTED_AFTER", 4)
    result = fit("cnn", Budget(device="cpu-1t", max_latency_ms=1), trials=3, runtimes=["onnxruntime"],
                 output=tmp_path)
    assert measured == ["fit-src-fp32"]
    assert [t.state for t in result.trials] == ["complete"] + ["repeat"] * 4
    assert all(t.note == "same choices as trial 0: not measured again" for t in result.trials[1:])


def test_the_best_feasible_trial_queues_its_neighbours(tmp_path, monkeypatch):
    """One step along tokens per text and pruning ratio; the new best feasible trial's neighbours run next."""
    from edgeopt import fit as fit_module
    from edgeopt.results import Row

    space = SearchSpace(Family.LSTM, ["onnxruntime"], max_len=64)
    params = {"arch": "prune", "ratio": 0.30000000000000004, "max_len": 40, "runtime": "onnxruntime",
              "precision_onnxruntime": "int8-dynamic"}
    assert [(p["max_len"], round(p["ratio"], 6)) for p in space.neighbours(params)] == \
        [(32, 0.3), (48, 0.3), (40, 0.2), (40, 0.4)]
    assert space.recipe(params, "full").prune.ratio == 0.3  # Optuna's stepped float, as the recipe states it

    def measure(self, recipe, settings):
        return Row(candidate_id=f"lstm/{recipe.name}#1", model="lstm", recipe=recipe.name, family="lstm",
                   format="onnx", precision="fp32", runtime="onnxruntime", device="cpu-1t", batch_size=1,
                   latency={"p95": 0.1}, accuracy=0.8, accuracy_samples=1000, memory_mb=100, size_mb=1)

    monkeypatch.setattr(fit_module.Search, "measure", measure)
    first = {"arch": "source", "max_len": 48, "runtime": "onnxruntime", "precision_onnxruntime": "fp32"}
    monkeypatch.setattr(fit_module.SearchSpace, "probes", lambda self: [first])
    result = fit("lstm", Budget(device="cpu-1t", max_latency_ms=1), trials=3, runtimes=["onnxruntime"],
                 output=tmp_path)
    assert [t.recipe for t in result.trials] == ["fit-src-len48-fp32", "fit-src-len40-fp32", "fit-src-len56-fp32"]


def test_durations_and_bad_input(tmp_path):
    assert (parse_duration("90"), parse_duration("90s"), parse_duration("20m"), parse_duration("1.5h")) == \
        (90, 90, 1200, 5400)
    with pytest.raises(InvalidInput, match="expected a duration"):
        parse_duration("20 minutes")
    with pytest.raises(InvalidInput, match="needs a device"):
        fit("cnn", Budget(max_latency_ms=1), trials=1, output=tmp_path)
    with pytest.raises(InvalidInput, match="at least one of"):
        fit("cnn", Budget(device="cpu-1t", min_accuracy=0.5), trials=1, output=tmp_path)
    with pytest.raises(InvalidInput, match="model: expected"):
        fit("vgg", Budget(device="cpu-1t", max_latency_ms=1), trials=1, output=tmp_path)
    with pytest.raises(InvalidInput, match="runtime nope: unknown"):
        fit("cnn", Budget(device="cpu-1t", max_latency_ms=1), trials=1, runtimes=["nope"], output=tmp_path)
    done = subprocess.run([EDGEOPT, "fit", "cnn", "--device", "no-such-board", "--max-latency-ms", "1", "-o",
                           str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown device profile 'no-such-board'" in done.stderr
    assert not (tmp_path / "fit.db").exists()  # nothing was started


def test_trials_plot_colours_by_order_and_draws_the_budget():
    from edgeopt.report.html import trials_plot
    from edgeopt.report.svg import ORDER_COLOURS

    trials = [(n, 0.05 + 0.01 * n, 0.85 + 0.005 * n, f"r{n}", n == 9) for n in range(10)]
    svg = trials_plot(trials, Budget(device="cpu-1t", max_latency_ms=0.12, min_accuracy=0.86), pick=9)
    assert svg.count("<circle") >= 9 and 'class="pick"' in svg and "#9 r9" in svg
    assert "limit 0.12" in svg and "minimum 86" in svg
    assert ORDER_COLOURS[0] in svg and ORDER_COLOURS[-1] in svg and "trials 0-1" in svg and "trials 8-9" in svg


def test_a_changed_search_space_is_a_new_study(tmp_path):
    """Optuna cannot change a parameter's choices within a study: another runtime set gets its own study."""
    from edgeopt.fit import FitConfig, Search

    def name(**extra):
        budget = Budget(device="cpu-1t", max_latency_ms=1)
        return Search(FitConfig(model="cnn", budget=budget, output=tmp_path, **extra)).study_name

    assert name(runtimes=["onnxruntime"]) == name(runtimes=["onnxruntime"], trials=5, time_budget_s=60)
    assert name(runtimes=["onnxruntime"]) != name(runtimes=["onnxruntime", "openvino"])


@pytest.mark.slow
def test_impossible_budget_stops_after_the_structural_phase(tmp_path):
    """A latency nothing can meet: the smallest structure is measured untrained, rejected, and the search stops
    before any fine-tuning, with the nearest structure and what to relax."""
    result = fit("cnn", Budget(device="cpu-1t", max_latency_ms=0.0005), trials=5, runtimes=["onnxruntime"],
                 max_train_samples=256, output=tmp_path)
    assert not result.ok and result.impossible and result.winner is None
    assert [t.phase for t in result.trials] == ["structure"]  # one probe, then stop: no short or full schedule
    assert "rejected on structure" in result.trials[0].note and result.trials[0].latency_ms > 0.0005
    assert result.near_misses and "--max-latency-ms 0.0005 ->" in result.relax()[0]


def _store_counts(output: Path) -> dict[str, int]:
    with sqlite3.connect(output / "results.db") as db:
        return dict(db.execute("SELECT candidate_id, COUNT(*) FROM measurements GROUP BY candidate_id").fetchall())


def _trial_states(db: Path) -> list[str]:
    """The study's trial states, read through a read-only connection: opening the file with Optuna while the search
    is still creating its tables would race it to create them (and could make the search fail)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            return [state for (state,) in connection.execute("SELECT state FROM trials")]
    except sqlite3.OperationalError:  # tables not created yet, or the search holds a write lock
        return []


@pytest.mark.slow
def test_search_finds_a_remeasured_winner_and_resumes_after_kill(tmp_path):
    """A real 3-trial search on the zoo CNN through the CLI, killed with SIGKILL after its first finished trial
    and run again: finished trials are kept (not re-measured), the winner fits and was re-measured on the whole
    test split, and the answer is JSON."""
    import optuna

    command = [EDGEOPT, "fit", "cnn", "--device", "cpu-1t", "--max-latency-ms", "50", "--max-memory-mb", "4000",
               "--trials", "3", "-o", str(tmp_path), "--json", *QUICK]
    log = tmp_path.parent / "first-fit.log"
    with log.open("w") as sink:
        first = subprocess.Popen(command, stdout=sink, stderr=sink, start_new_session=True)
    deadline = time.time() + 600
    states: list[str] = []
    while time.time() < deadline and first.poll() is None:
        time.sleep(1)
        states = _trial_states(tmp_path / "fit.db")
        if "RUNNING" in states and any(s in ("COMPLETE", "PRUNED") for s in states):
            break
    assert first.poll() is None, f"the search ended before it could be killed mid-trial:\n{log.read_text()[-2000:]}"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _store_counts(tmp_path)
    storage = f"sqlite:///{tmp_path / 'fit.db'}"
    (name,) = optuna.get_all_study_names(storage)
    finished = [t for t in optuna.load_study(study_name=name, storage=storage).trials if t.state.is_finished()]
    assert finished
    kept = {t.number: (t.value, t.user_attrs["candidate_id"]) for t in finished}

    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    trials = {t["number"]: t for t in result["trials"]}
    study = optuna.load_study(study_name=result["study"], storage=f"sqlite:///{tmp_path / 'fit.db'}")
    assert sum(t.state.name in ("COMPLETE", "PRUNED") and "duplicate_of" not in t.user_attrs
               for t in study.trials) == 3  # --trials counts resumed ones, not repeated proposals
    for number, (value, candidate) in kept.items():  # finished before the kill: kept as they were
        assert trials[number]["candidate_id"] == candidate
        assert trials[number]["accuracy"] == pytest.approx(value)
    after = _store_counts(tmp_path)
    assert all(after[c] == before[c] for c in before)  # nothing measured before was measured again

    winner = result["winner"]["row"]
    assert result["ok"] and winner["recipe"].startswith("fit-") and winner["runtime"] == "onnxruntime"
    assert winner["accuracy_samples"] == 10000  # the whole Fashion-MNIST test split
    assert winner["latency"]["p95"] <= 50 and winner["memory_mb"] <= 4000
    assert Path(winner["artifact_path"]).is_dir() and result["recipe"]["name"] == winner["recipe"]
    assert all(m["headroom"] >= 0 for m in result["winner"]["margins"])
    frontier = result["frontier"]
    assert frontier and [r["latency"]["p95"] for r in frontier] == sorted(r["latency"]["p95"] for r in frontier)
    assert [r["accuracy"] for r in frontier] == sorted(r["accuracy"] for r in frontier)
    assert "no default-recipe results" in result["comparison"]
    report = Path(result["report"]).read_text()
    assert "search trials: accuracy vs p95 latency" in report and winner["recipe"] in report
    budget = Budget(device="cpu-1t", max_latency_ms=50, max_memory_mb=4000)
    from edgeopt.results import Row

    assert all(m.ok for m in margins(Row.model_validate(winner), budget))
