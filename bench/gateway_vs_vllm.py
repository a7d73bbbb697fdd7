"""Gateway overhead: Switchyard against `vllm serve` on the same model, adapters and engine limits.

Both servers run at once on the tiny demo model (built offline) with the same two LoRA adapters;
the load alternates between them, round after round, so machine noise hits both alike. The same
streaming workload (base and adapters round-robin, greedy, `include_usage`) goes to each, through
the official `openai` client. Reported: output tokens/s, time to first token and latency, each
with its ratio to the `vllm serve` baseline measured in the same run.

    .venv/bin/python bench/gateway_vs_vllm.py [--requests 96] [--concurrency 8] [--max-tokens 64] [--rounds 3]

Writes bench/results/gateway_vs_vllm_<tag>.{md,json,png} (or under $BENCH_RESULTS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.config import artifact_store  # noqa: E402
from adapters.registry import require_adapter, version_by_id  # noqa: E402
from switchyard.bootstrap import prepare  # noqa: E402
from switchyard.config import Settings  # noqa: E402
from switchyard.schema import open_database  # noqa: E402
from tests.utils.server import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results"
ENGINE = {"max_model_len": 1024, "max_loras": 2, "max_cpu_loras": 4, "max_lora_rank": 16, "max_num_seqs": 32}
MODELS = ("demo-base", "support-bot", "yard-json")
GPU_SHARE = "0.35"
PROMPTS = ["Where is car 4412?", "Is track three open?", "When does the grain train leave tonight?"]


def adapter_folders(settings: Settings, names: tuple[str, ...]) -> dict[str, Path]:
    """Where the registry stored each adapter's active version (its folder name carries a digest),
    checked against its sha256, so that `vllm serve` loads the very files the gateway serves."""
    store = artifact_store(settings)
    folders = {}
    with open_database(settings.resolved_database_url) as session:
        for name in names:
            adapter = require_adapter(session=session, name=name)
            version = version_by_id(session=session, version_id=adapter.active_version_id)
            assert version is not None, f"{name} has no active version"
            folders[name] = store.local_path(version.artifact_uri, sha256=version.sha256).resolve()
    return folders


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, path: str, process: subprocess.Popen, headers: dict[str, str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            if httpx.get(url + path, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


async def one_request(client: openai.AsyncOpenAI, model: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    end = time.perf_counter()
    return (first or end) - started, end - started, tokens


async def run_load(base_url: str, key: str, *, requests: int, concurrency: int, max_tokens: int) -> dict[str, float]:
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)

    async def limited(i: int) -> tuple[float, float, int]:
        async with gate:
            return await one_request(client, MODELS[i % 3], PROMPTS[i % len(PROMPTS)], max_tokens)

    started = time.perf_counter()
    samples = await asyncio.gather(*(limited(i) for i in range(requests)))
    wall = time.perf_counter() - started
    await client.close()
    ttft = sorted(s[0] for s in samples)
    latency = sorted(s[1] for s in samples)
    return {
        "output_tok_s": sum(s[2] for s in samples) / wall,
        "ttft_p50_ms": statistics.median(ttft) * 1e3,
        "ttft_p99_ms": ttft[int(0.99 * (len(ttft) - 1))] * 1e3,
        "latency_p50_ms": statistics.median(latency) * 1e3,
        "completion_tokens": sum(s[2] for s in samples),
    }


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    baseline, gateway = "vllm serve", "switchyard"
    rows = [
        ("output tokens/s (higher is better)", "output_tok_s"),
        ("TTFT p50, ms", "ttft_p50_ms"),
        ("TTFT p99, ms", "ttft_p99_ms"),
        ("latency p50, ms", "latency_p50_ms"),
    ]
    lines = [
        "# Gateway overhead: Switchyard vs `vllm serve`",
        "",
        f"Tiny demo Llama ({args.tag}), {args.requests} streaming requests per round "
        f"at concurrency {args.concurrency}, "
        f"{args.max_tokens} max tokens, greedy; base, `support-bot` and `yard-json` round-robin; "
        f"{args.rounds} alternating rounds; medians over rounds. Same engine limits for both "
        f"(`max_loras=2`, `max_cpu_loras=4`, `max_lora_rank=16`).",
        "",
        f"| metric | {baseline} (baseline) | {gateway} | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, key in rows:
        b = statistics.median(r[key] for r in results[baseline])
        g = statistics.median(r[key] for r in results[gateway])
        lines.append(f"| {label} | {b:.1f} | {g:.1f} | {g / b:.2f} |")
    tokens = {name: {r["completion_tokens"] for r in runs} for name, runs in results.items()}
    lines += ["", f"Completion tokens per round: {tokens} (equal work on both sides).", ""]
    return "\n".join(lines)


def plot(results: dict[str, list[dict[str, float]]], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # the GPU machine has no matplotlib; the table and JSON still get written
        print("matplotlib is not installed: no plot")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("output_tok_s", "output tok/s"),
        ("ttft_p50_ms", "TTFT p50 (ms)"),
        ("latency_p50_ms", "latency p50 (ms)"),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(12, 3.6))
    for ax, (key, label) in zip(axes, metrics, strict=True):
        for offset, (name, runs) in enumerate(results.items()):
            values = [r[key] for r in runs]
            ax.bar([i + offset * 0.4 for i in range(len(values))], values, width=0.4, label=name)
        ax.set_title(label)
        ax.set_xlabel("round")
        ax.set_xticks([i + 0.2 for i in range(len(next(iter(results.values()))))])
        ax.set_xticklabels([str(i + 1) for i in range(len(next(iter(results.values()))))])
    axes[0].legend()
    fig.suptitle("Switchyard vs vllm serve, same model and adapters, alternating rounds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tag", default="cpu", help="names the result files: gateway_vs_vllm_<tag>.*")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sy-bench-"))
    env_settings = {f"SWITCHYARD_ENGINE__{k.upper()}": str(v) for k, v in ENGINE.items()}
    os.environ.update(env_settings)
    settings = Settings(_env_file=None, data_dir=work)
    prepare(settings)
    demo = settings.demo_model_dir.resolve()
    adapters = adapter_folders(settings, MODELS[1:])

    import torch

    on_gpu = torch.cuda.is_available()
    vllm_port, gateway_port = free_port(), free_port()
    vllm_cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(demo),
        "--served-model-name",
        "demo-base",
        "--port",
        str(vllm_port),
        "--seed",
        "0",
        "--enable-lora",
        "--lora-modules",
        *(f"{n}={p}" for n, p in adapters.items()),
        "--max-loras",
        str(ENGINE["max_loras"]),
        "--max-cpu-loras",
        str(ENGINE["max_cpu_loras"]),
        "--max-lora-rank",
        str(ENGINE["max_lora_rank"]),
        "--max-model-len",
        str(ENGINE["max_model_len"]),
        "--max-num-seqs",
        str(ENGINE["max_num_seqs"]),
        "--disable-uvicorn-access-log",
        # Both engines share the machine: on CPU a fixed KV cache each, on a GPU a share of its memory.
        *(["--gpu-memory-utilization", GPU_SHARE] if on_gpu else ["--kv-cache-memory-bytes", str(1 << 30)]),
    ]
    gateway_cmd = [sys.executable, "-m", "switchyard.cli", "serve", "--port", str(gateway_port)]
    env = {
        **os.environ,
        "SWITCHYARD_DATA_DIR": str(work),
        "SWITCHYARD_SERVER__MAX_QUEUED_REQUESTS": "4096",
        "SWITCHYARD_ENGINE__GPU_MEMORY_UTILIZATION": GPU_SHARE,
    }
    processes = {
        "vllm serve": start(vllm_cmd, env, work / "vllm.log"),
        "switchyard": start(gateway_cmd, env, work / "gateway.log"),
    }
    try:
        admin_key = ""
        for name, (port, path) in {
            "vllm serve": (vllm_port, "/health"),
            "switchyard": (gateway_port, "/ready"),
        }.items():
            wait_ready(f"http://127.0.0.1:{port}", path, processes[name], {})
        admin_key = (work / "admin.key").read_text().strip()
        targets = {
            "vllm serve": (f"http://127.0.0.1:{vllm_port}", "EMPTY"),
            "switchyard": (f"http://127.0.0.1:{gateway_port}", admin_key),
        }
        for url, key in targets.values():  # warm both: compile paths, load adapters
            asyncio.run(run_load(url, key, requests=12, concurrency=4, max_tokens=8))
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for round_no in range(args.rounds):
            order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
            for name in order:
                url, key = targets[name]
                results[name].append(
                    asyncio.run(
                        run_load(
                            url, key, requests=args.requests, concurrency=args.concurrency, max_tokens=args.max_tokens
                        )
                    )
                )
                print(name, round_no + 1, json.dumps(results[name][-1]), flush=True)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    text = report(results, args)
    out = Path(os.environ.get("BENCH_RESULTS", RESULTS))
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gateway_vs_vllm_{args.tag}"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    plot(results, out / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
