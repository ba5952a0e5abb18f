"""Serving load benchmark (issue 6): requests/s and latency, parent-routed vs child-routed, and a soak.

Starts ``create_app(home)`` in a child process on a free loopback port (the
load generator runs in this process, so client and server do not share a
GIL), picks prompts that ``auto`` really routes to the parent and to a
champion child (each candidate prompt is sent once and kept only if the
response's ``breedlab.artifact_id`` is the intended model), then for 1, 4 and
16 concurrent clients measures requests/s and p50/p95 latency, bounded by a
request count and a time limit per cell. ``--soak-seconds`` adds a constant
mixed load reporting errors and the server's RSS over time (flat: the last
minute's mean RSS within ``FLAT_PCT`` of the first minute's; the slope over
the second half tells a plateau from a slow leak). Loopback only.
Writes docs/results/serve_load.md + .json.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/serve_load.py \\
        --home ~/.cache/breedlab/demo/quick/latest [--requests 48] [--soak-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
LEVELS = (1, 4, 16)
FLAT_PCT = 5.0
PROMPT_CHARS = 240
CANDIDATE_PROMPTS = 40


def serve(home: str, port: int, engine: str = "fast") -> None:
    """The child process: one app on 127.0.0.1:port until SIGINT (uvicorn drains on it)."""
    from dataclasses import replace

    import uvicorn

    from breedlab.server.app import create_app
    from breedlab.server.config import load_server_config

    config = replace(load_server_config(), engine=engine)
    uvicorn.run(create_app(home, config), host="127.0.0.1", port=port, log_level="warning")


def start_server(home: Path, timeout_s: float = 240.0, engine: str = "fast") -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(home), "--port", str(port),
                             "--engine", engine], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} during startup")
        try:
            if httpx.get(base + "/v1/models", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise TimeoutError(f"the server did not answer within {timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)  # graceful: in-flight requests drain
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ----- prompts that really route where the row says ------------------------------------------------

def targets(home: Path) -> dict:
    """{"parent": (id, texts), "child": (id, texts)}: the parent with general text, a champion child with its domain's."""
    from breedlab.data.read import iter_documents
    from breedlab.registry import Registry

    registry = Registry.open(home / "registry")
    parent = registry.find(kind="parent")[0]
    child = next(c for c in registry.find(state="champion") if c.manifest.kind != "parent")

    def texts(domain: str) -> list[str]:
        dataset = registry.find(kind="dataset", name=f"{domain}/test")[0]
        docs = (d["text"][:PROMPT_CHARS] for d in iter_documents(dataset.path))
        return [t for _, t in zip(range(CANDIDATE_PROMPTS), docs)]

    return {"parent": (parent.id, texts("general")), "child": (child.id, texts(child.manifest.recipe["domain"]))}


def parent_target(home: Path) -> dict:
    """{"parent": (id, texts)} alone: a home with no champion child (the real parent's own home)."""
    from breedlab.data.read import iter_documents
    from breedlab.registry import Registry

    registry = Registry.open(home / "registry")
    parent = next(p for p in registry.find(kind="parent") if p.state == "champion")
    dataset = registry.find(kind="dataset", name="general/test")[0]
    docs = (d["text"][:PROMPT_CHARS] for d in iter_documents(dataset.path))
    return {"parent": (parent.id, [t for _, t in zip(range(CANDIDATE_PROMPTS), docs)])}


def routed_prompts(base: str, wanted: tuple[str, list[str]]) -> tuple[list[str], str]:
    """The candidate prompts that ``auto`` sends to the wanted model (one probe request each), and the
    engine/quantization that served them."""
    model_id, texts = wanted
    kept, engine = [], ""
    with httpx.Client(base_url=base, timeout=120) as client:
        for text in texts:
            reply = client.post("/v1/completions", json={"model": "auto", "prompt": text, "max_tokens": 1})
            if reply.status_code == 200 and reply.json()["breedlab"]["artifact_id"] == model_id:
                kept.append(text)
                served = reply.json()["breedlab"]
                engine = f"{served['engine']}/{served['quantization']}"
    return kept, engine


# ----- load ---------------------------------------------------------------------------------------

async def run_load(base: str, prompts: list[tuple[str, str]], clients: int, *, requests: int | None,
                   seconds: float, max_tokens: int, on_sample=None) -> dict:
    """``clients`` workers send completions until ``requests`` are done or ``seconds`` pass.

    ``prompts`` are (intended artifact id, text) pairs used round robin; a reply
    served by another model counts as misrouted, any non-200 or transport failure as an error.
    """
    stats = {"ok": 0, "errors": {}, "misrouted": 0, "latency_ms": [], "tokens": 0}
    issued, started = 0, time.perf_counter()
    deadline = started + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while time.perf_counter() < deadline and (requests is None or issued < requests):
            model_id, text = prompts[issued % len(prompts)]
            issued += 1
            t0 = time.perf_counter()
            try:
                reply = await client.post("/v1/completions",
                                          json={"model": "auto", "prompt": text, "max_tokens": max_tokens})
            except httpx.HTTPError as error:
                key = type(error).__name__
                stats["errors"][key] = stats["errors"].get(key, 0) + 1
                continue
            if reply.status_code != 200:
                stats["errors"][str(reply.status_code)] = stats["errors"].get(str(reply.status_code), 0) + 1
                continue
            stats["latency_ms"].append((time.perf_counter() - t0) * 1000)
            body = reply.json()
            stats["ok"] += 1
            stats["tokens"] += body["usage"]["completion_tokens"]
            stats["misrouted"] += body["breedlab"]["artifact_id"] != model_id

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        tasks = [asyncio.create_task(worker(client)) for _ in range(clients)]
        if on_sample is not None:
            tasks.append(asyncio.create_task(on_sample(stats, deadline)))
        await asyncio.gather(*tasks)
    return summarise(stats, time.perf_counter() - started, clients)


def summarise(stats: dict, wall_s: float, clients: int) -> dict:
    lat = sorted(stats["latency_ms"])

    def pct(q: float) -> float | None:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

    return {"clients": clients, "ok": stats["ok"], "errors": stats["errors"], "misrouted": stats["misrouted"],
            "wall_s": round(wall_s, 2), "rps": stats["ok"] / wall_s if wall_s else 0.0,
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "tokens_per_s": stats["tokens"] / wall_s if wall_s else 0.0}


async def soak(base: str, pid: int, prompts: list[tuple[str, str]], *, seconds: float, clients: int,
               sample_s: float, max_tokens: int) -> dict:
    """Constant mixed load for ``seconds``; the server's RSS, requests and errors sampled every ``sample_s``."""
    samples: list[dict] = []
    started = time.perf_counter()

    async def sampler(stats: dict, deadline: float) -> None:
        while True:
            samples.append({"t_s": round(time.perf_counter() - started, 1), "rss_mib": round(rss_mib(pid), 1),
                            "ok": stats["ok"], "errors": sum(stats["errors"].values())})
            if time.perf_counter() >= deadline:
                return
            await asyncio.sleep(min(sample_s, max(0.0, deadline - time.perf_counter())))

    result = await run_load(base, prompts, clients, requests=None, seconds=seconds, max_tokens=max_tokens,
                            on_sample=sampler)
    first = [s["rss_mib"] for s in samples if s["t_s"] <= 60]
    last = [s["rss_mib"] for s in samples if s["t_s"] >= samples[-1]["t_s"] - 60]
    first_mean, last_mean = sum(first) / len(first), sum(last) / len(last)
    drift = 100 * (last_mean - first_mean) / first_mean
    return {**result, "seconds": seconds, "rss_first_minute_mib": round(first_mean, 1),
            "rss_last_minute_mib": round(last_mean, 1), "rss_drift_pct": round(drift, 2),
            "rss_slope_second_half_mib_per_min": round(second_half_slope(samples), 3),
            "flat": abs(drift) <= FLAT_PCT, "samples": samples}


def second_half_slope(samples: list[dict]) -> float:
    """Least-squares RSS slope (MiB/min) over the soak's second half: ~0 once memory has levelled off."""
    half = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] / 2]
    if len(half) < 2:
        return 0.0
    mean_t = sum(s["t_s"] for s in half) / len(half)
    mean_r = sum(s["rss_mib"] for s in half) / len(half)
    num = sum((s["t_s"] - mean_t) * (s["rss_mib"] - mean_r) for s in half)
    den = sum((s["t_s"] - mean_t) ** 2 for s in half)
    return 60.0 * num / den if den else 0.0


# ----- report -------------------------------------------------------------------------------------

def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def load_table(rows: list[dict]) -> list[str]:
    """Markdown: one line per client count, parent-routed and child-routed side by side."""
    if not any(r["route"] == "child" for r in rows):  # --parent-only
        lines = ["| clients | engine | parent req/s | parent p50 ms | parent p95 ms | errors |", "|---:|---|---:|---:|---:|---:|"]
        return lines + [f"| {r['clients']} | {r['engine']} | {r['rps']:.2f} | {_ms(r['p50_ms'])} | {_ms(r['p95_ms'])} "
                        f"| {sum(r['errors'].values())} |" for r in rows]
    lines = [("| clients | parent req/s | parent p50 ms | parent p95 ms | child req/s | child p50 ms | child p95 ms "
             "| errors (parent/child) |"), "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for clients in sorted({r["clients"] for r in rows}):
        p, c = (next(r for r in rows if r["clients"] == clients and r["route"] == k) for k in ("parent", "child"))
        lines.append(f"| {clients} | {p['rps']:.2f} | {_ms(p['p50_ms'])} | {_ms(p['p95_ms'])} | {c['rps']:.2f} "
                     f"| {_ms(c['p50_ms'])} | {_ms(c['p95_ms'])} | {sum(p['errors'].values())}/"
                     f"{sum(c['errors'].values())} |")
    return lines


def markdown(result: dict) -> str:
    out = ["# Serving load (issue 6)", "", f"- ecosystem: `{result['home']}`", f"- command: `{result['command']}`",
           f"- machine: {result['machine']}", f"- when (UTC): {result['created_utc']}",
           (f"- server: `create_app(home)` in its own process on loopback, shipped server config "
           f"(max_concurrency {result['server']['max_concurrency']}, queue_limit {result['server']['queue_limit']}); "
           f"completions of {result['max_tokens']} tokens, greedy, model `auto`"),
           (f"- routed prompts: {result['prompts']['parent']} to the parent (general text), "
           f"{result['prompts'].get('child', 0)} to {result['child_name']} (its domain's held-out text); "
           f"misrouted replies during the load: {sum(r['misrouted'] for r in result['load'])}"),
           f"- each cell: at most {result['requests']} requests or {result['cell_seconds']:.0f} s", "",
           *load_table(result["load"]), ""]
    soak = result.get("soak")
    if soak:
        out += ["## Soak", "", (f"- {soak['seconds']:.0f} s at {soak['clients']} clients (parent and child prompts "
                f"alternating): {soak['ok']} requests, errors {soak['errors'] or 0}, {soak['rps']:.2f} req/s, "
                f"p50 {_ms(soak['p50_ms'])} ms, p95 {_ms(soak['p95_ms'])} ms"),
                (f"- server RSS: first minute {soak['rss_first_minute_mib']} MiB, last minute "
                f"{soak['rss_last_minute_mib']} MiB ({soak['rss_drift_pct']:+.2f}%): "
                f"{'flat' if soak['flat'] else 'NOT flat'} (threshold {FLAT_PCT}%); slope over the second half "
                f"{soak.get('rss_slope_second_half_mib_per_min', float('nan')):+.2f} MiB/min"), "",
                "| t (s) | RSS MiB | requests ok | errors |", "|---:|---:|---:|---:|",
                *(f"| {s['t_s']:.0f} | {s['rss_mib']} | {s['ok']} | {s['errors']} |" for s in soak["samples"][::6])]
    return "\n".join(out) + "\n"


def measure(args, base: str, pid: int, home: Path) -> dict:
    from breedlab.registry import Registry

    wanted = parent_target(home) if args.parent_only else targets(home)
    probed = {route: routed_prompts(base, wanted[route]) for route in wanted}
    prompts = {route: kept for route, (kept, _) in probed.items()}
    for route, kept in prompts.items():
        if not kept:
            raise RuntimeError(f"no candidate prompt was routed to the {route}; the benchmark needs both routes")
    pairs = {route: [(wanted[route][0], text) for text in kept] for route, kept in prompts.items()}
    rows = []
    for clients in args.levels:
        for route in wanted:
            row = asyncio.run(run_load(base, pairs[route], clients, requests=args.requests,
                                       seconds=args.cell_seconds, max_tokens=args.max_tokens))
            rows.append({"route": route, "engine": probed[route][1], **row})
            print(f"{route:6s} x{clients:<2d} {row['rps']:6.2f} req/s  p50 {_ms(row['p50_ms'])} ms  "
                  f"p95 {_ms(row['p95_ms'])} ms  errors {row['errors'] or 0}", flush=True)
    if args.parent_only:
        return {"load": rows, "prompts": {k: len(v) for k, v in prompts.items()}, "child_name": None}
    child_name = Registry.open(home / "registry").get(wanted["child"][0]).manifest.name
    result = {"load": rows, "prompts": {k: len(v) for k, v in prompts.items()}, "child_name": child_name}
    if args.soak_seconds:
        mixed = [p for pair in zip(pairs["parent"], pairs["child"]) for p in pair]
        result["soak"] = asyncio.run(soak(base, pid, mixed, seconds=args.soak_seconds, clients=args.soak_clients,
                                          sample_s=args.sample_seconds, max_tokens=args.max_tokens))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="a breedlab home with an ecosystem (e.g. <home>/demo/quick/latest)")
    parser.add_argument("--requests", type=int, default=48, help="requests per cell at most")
    parser.add_argument("--cell-seconds", type=float, default=60.0, help="seconds per cell at most")
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS), help="concurrent clients")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--soak-seconds", type=float, default=0.0, help="0: no soak")
    parser.add_argument("--soak-clients", type=int, default=4)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load", help="writes OUT.md and OUT.json")
    parser.add_argument("--engine", default="fast", choices=("fast", "hf"),
                        help="the server's engine setting: fast (each model's fastest passed engine) or hf")
    parser.add_argument("--parent-only", action="store_true",
                        help="only the parent route (a home without a champion child, e.g. the real parent's)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: run the server child on this home
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.port, args.engine)
    if args.home is None:
        parser.error("--home is required")
    from breedlab.evaluation.packets import describe_machine
    from breedlab.server.config import load_server_config

    home = args.home.expanduser().resolve()
    config = load_server_config()  # read before the run: nothing after the measurements may fail
    proc, base = start_server(home, engine=args.engine)
    try:
        result = measure(args, base, proc.pid, home)
    finally:
        stop_server(proc)
    result.update({"home": str(home), "machine": describe_machine(), "max_tokens": args.max_tokens,
                   "requests": args.requests, "cell_seconds": args.cell_seconds,
                   "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "command": "benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
                   "server": {"max_concurrency": config.max_concurrency, "queue_limit": config.queue_limit}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print("\n".join(load_table(result["load"])))
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
