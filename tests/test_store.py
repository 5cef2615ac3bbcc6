"""The SQLite results store: round trip, filters, resume, transactions, schema version, concurrent reading."""
from __future__ import annotations

import sqlite3

import pytest

from edgeopt.benchmarks.latency import summarize
from edgeopt.benchmarks.results import ArtifactInfo, Measurement
from edgeopt.core.errors import InvalidInput
from edgeopt.store import SCHEMA_VERSION, ResultStore


def make(candidate="cnn/onnxruntime/cpu-1t", batch=1, sha="a" * 64, precision="fp32", status="ok", median=1.0,
         device="cpu-1t") -> Measurement:
    artifact = ArtifactInfo(name="cnn", sha256=sha, path="/x", family="cnn", format="onnx", precision=precision,
                            recipe=[{"step": "export"}], parent="p" * 64)
    ok = status == "ok"
    return Measurement(candidate_id=candidate, artifact=artifact, runtime="onnxruntime", device=device,
                       emulated=device.startswith("edge"), batch_size=batch,
                       latency=summarize([median] * 5) if ok else None,
                       throughput=batch * 1000 / median if ok else None,
                       accuracy=0.9 if ok else None, status=status, error=None if ok else "boom",
                       provenance={"cpu_model": "test", "threads": 1})


def test_round_trip_and_filters(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        first = make()
        store.add(first)
        store.add(make(batch=8))
        store.add(make(candidate="int8", sha="b" * 64, precision="int8", device="edge-1c-512m"))
        store.add(make(candidate="broken", sha="c" * 64, status="failed"))
        assert len(store) == 4
        assert store.measurements()[0] == first  # every field survives, nested models included
        assert len(store.measurements(batch_size=8)) == 1
        assert [m.candidate_id for m in store.measurements(precision="int8")] == ["int8"]
        assert len(store.measurements(emulated=True)) == 1
        assert len(store.measurements(status="failed")) == 1
        assert len(store.measurements(sha256=["a" * 64, "b" * 64])) == 3
        with pytest.raises(InvalidInput, match="unknown measurement filter"):
            store.measurements(colour="red")


def test_has_drives_resume_and_latest_picks_the_newest(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.add(make(status="failed"))
        assert not store.has("cnn/onnxruntime/cpu-1t")  # a failure is measured again on resume
        assert store.has("cnn/onnxruntime/cpu-1t", status=None)
        store.add(make(median=2.0))
        assert store.has("cnn/onnxruntime/cpu-1t", batch_size=1)
        assert not store.has("cnn/onnxruntime/cpu-1t", batch_size=8)
        latest = store.measurements(latest=True)
        assert len(latest) == 1 and latest[0].latency.median == 2.0


def test_add_many_is_one_transaction(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        bad = make(batch=8)
        bad.artifact.sha256 = None  # violates NOT NULL: the whole batch must roll back
        with pytest.raises(sqlite3.IntegrityError):
            store.add_many([make(), bad])
        assert len(store) == 0
        store.add(make())
        assert len(store) == 1


def test_schema_version_and_newer_schema_rejected(tmp_path):
    path = tmp_path / "r.db"
    with ResultStore(path) as store:
        assert store.version == SCHEMA_VERSION
        store.add(make())
    with ResultStore(path) as store:  # reopening applies nothing twice and keeps the rows
        assert store.version == SCHEMA_VERSION and len(store) == 1
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(InvalidInput, match="newer"):
        ResultStore(path)


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("this is not sqlite " * 100)
    with pytest.raises(InvalidInput, match="notes.db"):
        ResultStore(path)


def test_readable_while_a_sweep_writes(tmp_path):
    path = tmp_path / "r.db"
    writer, reader = ResultStore(path), ResultStore(path, timeout=0.5)
    writer.add(make())
    assert writer.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    writer.conn.execute("BEGIN IMMEDIATE")  # a sweep in the middle of a write
    writer.conn.execute("DELETE FROM measurements")
    assert len(reader.measurements()) == 1  # the reader is not blocked and sees the last committed state
    writer.conn.execute("ROLLBACK")
    writer.add(make(batch=8))
    assert len(reader.measurements()) == 2
    writer.close()
    reader.close()
