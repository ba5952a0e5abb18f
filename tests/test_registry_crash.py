"""Killed writers lose nothing committed; concurrent writers lose nothing at all."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from breedlab.registry import Registry, verify

WORKER = Path(__file__).with_name("registry_worker.py")
KILLS = 24


def start_worker(root: Path, tag: str, count: int, size: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, str(WORKER), str(root), tag, str(count), str(size)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def assert_whole_or_nothing(root: Path) -> Registry:
    problems = [f for f in verify(root) if f.level == "problem"]
    assert problems == [], problems
    reg = Registry.open(root)
    for art in reg.find(kind="dataset"):
        assert sorted(art.manifest.files) == ["README.md", "shard-00000.jsonl", "shard-00001.jsonl",
                                              "shard-00002.jsonl"]
        assert all((art.path / rel).is_file() for rel in art.manifest.files)
    return reg


def test_sigkill_at_random_moments_leaves_a_verifiable_registry(tmp_path):
    root = tmp_path / "registry"
    Registry.open(root)
    rng = random.Random(20261122)
    for attempt in range(KILLS):
        worker = start_worker(root, f"k{attempt}", count=1000, size=256 * 1024)
        time.sleep(rng.uniform(0.15, 0.6))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert worker.returncode == -signal.SIGKILL
        reg = assert_whole_or_nothing(root)
        names = {art.manifest.name for art in reg.find(kind="dataset") if art.manifest.name.startswith(f"k{attempt}-")}
        assert names == {f"k{attempt}-{i}" for i in range(len(names))}  # committed in order, no holes
    committed = len(Registry.open(root).find(kind="dataset"))
    assert committed > KILLS  # kills landed mid-run, not only before the first write
    # A rerun of a killed job finishes and re-registering its committed part changes nothing.
    rerun = start_worker(root, "k0", count=3, size=256 * 1024)
    assert rerun.wait(timeout=120) == 0, rerun.stderr.read()
    assert len(assert_whole_or_nothing(root).find(kind="dataset")) >= committed


def test_two_processes_registering_at_once_both_succeed(tmp_path):
    root = tmp_path / "registry"
    Registry.open(root)
    workers = [start_worker(root, tag, count=15, size=64 * 1024) for tag in ("left", "right")]
    for worker in workers:
        assert worker.wait(timeout=300) == 0, worker.stderr.read()
    reg = assert_whole_or_nothing(root)
    names = {art.manifest.name for art in reg.find(kind="dataset")}
    assert names == {f"{tag}-{i}" for tag in ("left", "right") for i in range(15)}
    assert len(reg.events()) == 30
