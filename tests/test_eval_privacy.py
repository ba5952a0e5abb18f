"""The privacy guard blocks and counts network attempts, lets local IPC through and restores sockets."""

from __future__ import annotations

import os
import socket
import tempfile
import urllib.request
from contextlib import closing

import pytest
import torch

from breedlab.evaluation.latency import LatencySettings
from breedlab.evaluation.measure import measure_candidate
from breedlab.evaluation.privacy import NetworkBlocked, data_local, network_guard
from breedlab.evaluation.suites import build_suite
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model
from breedlab.registry import Registry


@pytest.fixture()
def server():
    """A listening TCP socket on 127.0.0.1 (bind and listen are not outbound, so never blocked)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener, listener.getsockname()[1]


def test_every_outbound_entry_point_is_blocked_and_counted(server):
    _, port = server
    with network_guard() as guard:
        with pytest.raises(NetworkBlocked):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        with closing(socket.socket()) as sock, pytest.raises(NetworkBlocked):
            sock.connect(("127.0.0.1", port))
        with closing(socket.socket()) as sock, pytest.raises(NetworkBlocked):
            sock.connect_ex(("127.0.0.1", port))
        with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as udp, pytest.raises(NetworkBlocked):
            udp.sendto(b"x", ("127.0.0.1", port))
        with pytest.raises(NetworkBlocked):
            socket.getaddrinfo("example.org", 443)
    assert guard.count == 5
    assert [a.operation for a in guard.attempts] == ["create_connection", "connect", "connect_ex", "sendto",
                                                     "getaddrinfo"]
    assert guard.attempts[1].host == "127.0.0.1" and guard.attempts[1].port == port
    assert guard.attempts[4].host == "example.org" and guard.attempts[4].port == 443


def test_sockets_work_again_after_the_guard_even_after_an_error(server):
    listener, port = server
    with pytest.raises(RuntimeError), network_guard():
        raise RuntimeError("measurement crashed")
    assert "connect" not in socket.socket.__dict__  # the inherited method is back, not a copy
    with closing(socket.create_connection(("127.0.0.1", port), timeout=5)):
        accepted, _ = listener.accept()
        accepted.close()


def test_a_swallowed_attempt_is_still_counted(server):
    _, port = server
    with network_guard() as guard:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except Exception as exc:  # noqa: BLE001 - model code that hides its failure is exactly the case
            del exc
    assert guard.count >= 1


def test_unix_sockets_are_local_and_allowed():
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:  # short path: AF_UNIX names are <= 107 bytes
        path = os.path.join(scratch, "ipc.sock")
        with closing(socket.socket(socket.AF_UNIX)) as listener:
            listener.bind(path)
            listener.listen(1)
            with network_guard() as guard, closing(socket.socket(socket.AF_UNIX)) as client:
                client.connect(path)
            assert guard.count == 0


def test_nested_guards_both_count():
    with network_guard() as outer:
        with network_guard() as inner, pytest.raises(NetworkBlocked):
            socket.getaddrinfo("localhost", 80)
        with pytest.raises(NetworkBlocked):  # the outer guard is still in force
            socket.getaddrinfo("localhost", 80)
    assert inner.count == 1 and outer.count == 2


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("privacy"))
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir, domains=("code", "general"), docs=40)
    _, tokenizer = load_model(pico.parent.path)
    suites = {"cloze": build_suite(registry, "cloze", "code", tokenizer=tokenizer, cases=4, context_tokens=48,
                                   continuation_tokens=16).id,
              "lm": build_suite(registry, "lm", "code", tokenizer=tokenizer, cases=4, tokens=32).id}
    return registry, pico, suites


def _phone_home(mode: str):
    """A before_scoring hook: every decoder forward first tries 127.0.0.1, then swallows, raises or wraps."""
    def install(model):
        decoder_forward = model.model.forward

        def forward(*args, **kwargs):
            try:
                socket.create_connection(("127.0.0.1", 9), timeout=0.1)
            except OSError as exc:
                if mode == "raise":
                    raise
                if mode == "wrap":  # as a download helper would: the NetworkBlocked is only the cause
                    raise RuntimeError("could not fetch the vocabulary") from exc
            return decoder_forward(*args, **kwargs)
        model.model.forward = forward
    return install


def test_a_measurement_whose_model_connects_records_the_attempts(lab):
    registry, pico, suites = lab
    quick = LatencySettings(new_tokens=4, repeats=1)

    def measure(hook):
        return measure_candidate(registry, pico.parent.id, suites, latency=quick, isolate=False, before_scoring=hook)

    swallowed = measure(_phone_home("swallow"))
    assert swallowed.network_attempts > 0 and swallowed.utility is not None  # hidden, yet counted
    for mode, error in (("raise", "NetworkBlocked"), ("wrap", "RuntimeError")):
        failed = measure(_phone_home(mode))
        assert failed.network_attempts > 0 and failed.utility is None and failed.domain_ppl is None
        assert error in failed.unmeasured["utility"] and error in failed.unmeasured["latency_token_ms_p50"]
        assert failed.weight_bytes > 0 and failed.data_local is True  # what needs no forward is still measured
    assert measure(None).network_attempts == 0


def test_data_local_names_a_dataset_whose_files_are_gone(lab, tmp_path):
    registry, pico, _ = lab
    shard = tmp_path / "shard-00000.jsonl"
    shard.write_text('{"id": "x-0", "domain": "x", "source": "test", "text": "hello"}\n')
    data = registry.register("dataset", "x/train", {shard.name: shard}, operator="test", recipe={"n": 1})
    weights = {name: pico.parent.path / name for name in pico.parent.manifest.files if name != "README.md"}
    child = registry.register("child", "x/child", weights, operator="test", recipe={"x": 1},
                              parents=[pico.parent.id], data=[data.id])
    assert data_local(registry, child)[0] is True
    os.chmod(data.path, 0o755)
    (data.path / shard.name).unlink()  # the registry still names it, but the data is not here
    ok, reason = data_local(registry, child)
    assert ok is False and data.id[:12] in reason and shard.name in reason
