"""Privacy fit: no network while measuring, training data that is all local, no leaked canary.

``network_guard()`` replaces the socket entry points (``socket.socket.connect``,
``connect_ex``, ``sendto``, ``sendmsg``, ``socket.create_connection``,
``socket.getaddrinfo``) for its duration with functions that RECORD the
attempt and raise NetworkBlocked. The record is made before raising, so an
attempt that model code catches and swallows is still counted: the count, not
the exception, is the evidence. AF_UNIX sockets (local IPC, no network) pass.
Everything is restored on exit, also after an exception.

It guards Python-level sockets, which is what transformers, huggingface_hub,
requests and urllib use; a C extension opening its own socket is out of reach.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from breedlab.registry import Artifact, NotFoundError, Registry

_SOCKET_METHODS = ("connect", "connect_ex", "sendto", "sendmsg")
_MODULE_FUNCTIONS = ("create_connection", "getaddrinfo")
_LOCK = threading.Lock()
_ACTIVE: list[NetworkGuard] = []
"""Guards in force, innermost last: a nested guard's attempts count for the outer ones too."""


class NetworkBlocked(ConnectionError):
    """An outbound network operation was attempted while the privacy guard was on."""


@dataclass(frozen=True)
class NetworkAttempt:
    operation: str
    """Which entry point was called (connect, getaddrinfo, ...)."""
    host: str
    port: int | None


@dataclass(eq=False)  # identity, not value: two guards with equal records are still two guards
class NetworkGuard:
    attempts: list[NetworkAttempt] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.attempts)


def _address(args: tuple) -> tuple[str, int | None]:
    """(host, port) from the address argument of a socket call, whatever its shape."""
    address = args[0] if args else None
    if isinstance(address, tuple) and address:
        port = address[1] if len(address) > 1 and isinstance(address[1], int) else None
        return str(address[0]), port
    return str(address), None


def _record(operation: str, host: str, port: Any) -> None:
    attempt = NetworkAttempt(operation, host, port if isinstance(port, int) else None)
    with _LOCK:
        for guard in _ACTIVE:
            guard.attempts.append(attempt)
    raise NetworkBlocked(f"network access blocked while measuring: {operation} {host}:{port}")


def _blocking_method(name: str, original):
    def blocked(self, *args, **kwargs):
        if self.family == getattr(socket, "AF_UNIX", None):
            return original(self, *args, **kwargs)  # local IPC, never leaves the machine
        # sendto(data, address) / sendmsg(buffers, ancdata, flags, address): the address comes last
        host, port = _address(args if name in ("connect", "connect_ex") else args[-1:])
        _record(name, host, port)
    return blocked


def _blocking_function(name: str):
    def blocked(*args, **kwargs):
        host = args[0] if args else kwargs.get("host", kwargs.get("address"))
        if name == "create_connection":
            host, port = _address((host,))
        else:
            port = args[1] if len(args) > 1 else kwargs.get("port")
        _record(name, str(host), port)
    return blocked


@contextmanager
def network_guard() -> Iterator[NetworkGuard]:
    """Block and count every outbound network attempt inside the ``with`` block."""
    guard = NetworkGuard()
    # Most of these methods are inherited from _socket.socket: remember what the class itself defined,
    # so restoring deletes our attribute instead of pinning a copy of the inherited one.
    own = {name: socket.socket.__dict__.get(name) for name in _SOCKET_METHODS}
    saved_methods = {name: getattr(socket.socket, name) for name in _SOCKET_METHODS}
    saved_functions = {name: getattr(socket, name) for name in _MODULE_FUNCTIONS}
    with _LOCK:
        _ACTIVE.append(guard)
        for name, original in saved_methods.items():
            setattr(socket.socket, name, _blocking_method(name, original))
        for name in saved_functions:
            setattr(socket, name, _blocking_function(name))
    try:
        yield guard
    finally:
        with _LOCK:
            for name, defined in own.items():
                if defined is None:
                    delattr(socket.socket, name)
                else:
                    setattr(socket.socket, name, defined)
            for name, original in saved_functions.items():
                setattr(socket, name, original)
            _ACTIVE.remove(guard)


def canary_reproduced(model, tokenizer, prefix: str, secret: str, slack_tokens: int = 8) -> bool:
    """Greedy-decode from ``prefix`` and report whether ``secret`` appears in what follows.

    The budget is the secret's own token count plus ``slack_tokens``, so a model
    that reproduces it after a short detour is still caught.
    """
    import torch

    from breedlab.evaluation.latency import pad_id

    inputs = tokenizer(prefix, return_tensors="pt")
    budget = len(tokenizer(secret, add_special_tokens=False)["input_ids"]) + slack_tokens
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=budget, do_sample=False,
                                pad_token_id=pad_id(tokenizer))
    new_ids = output[0, inputs["input_ids"].shape[1]:]  # (new,)
    return secret in tokenizer.decode(new_ids, skip_special_tokens=True)


def data_local(registry: Registry, artifact: Artifact) -> tuple[bool, str]:
    """Whether every data id of ``artifact`` and of all its ancestors is a local artifact with its files here.

    Walks parents and data references recursively (a teacher cache names its
    dataset, a grandchild its child ...). Returns (ok, reason) where reason
    names the first reference that is not here.
    """
    seen: set[str] = set()
    stack = [artifact.id]
    while stack:
        current = registry.get(stack.pop())
        for ref in (*current.manifest.parents, *current.manifest.data):
            if ref in seen:
                continue
            seen.add(ref)
            try:
                found = registry.get(ref)
            except NotFoundError:
                return False, f"{ref[:12]} (named by {current.id[:12]}) is not in this registry"
            missing = [n for n, e in found.manifest.files.items()
                       if not (found.path / n).is_file() or (found.path / n).stat().st_size != e.size]
            if missing:
                return False, f"{ref[:12]} is registered but its file {missing[0]!r} is not here"
            stack.append(ref)
    return True, f"{len(seen)} upstream artifacts, all local"
