"""The Python API: run a workload against any OpenAI-compatible target and get a Report back.

    report = await run_workload("http://127.0.0.1:8080", "surge", duration_s=10, max_requests=200)
    print(report.summary["totals"]["ttft_ms"]["p95"])
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tokenyard.bench.client import Target
from tokenyard.bench.errors import WorkloadError
from tokenyard.bench.progress import Progress, progress_wanted
from tokenyard.bench.report import Report
from tokenyard.bench.runner import Runner
from tokenyard.bench.workload import Workload, load_workload


def normalize_target(url: str) -> str:
    """``http://host:port``, ``.../`` or ``.../v1`` all mean the same target; return it without ``/v1``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise WorkloadError("target", f"expected an http:// or https:// URL, got {url!r}")
    return url.removesuffix("/v1")


async def discover_model(session: aiohttp.ClientSession, base_url: str, api_key: str | None) -> str:
    """The first model id ``GET /v1/models`` lists (used when neither the workload nor a flag names one)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with session.get(f"{base_url}/v1/models", headers=headers) as resp:
            payload = await resp.json(content_type=None)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise WorkloadError("model", f"no model given and {base_url}/v1/models failed: {exc}") from exc
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
        raise WorkloadError("model", f"no model given and {base_url}/v1/models lists none; pass --model")
    return str(data[0]["id"])


async def run_workload(target_url: str, workload: Workload | str, *, duration_s: float | None = None,
                       max_requests: int | None = None, out_dir: str | Path | None = None,
                       progress: bool = False, concurrency: int | None = None, model: str | None = None,
                       api_key: str | None = None, seed: int | None = None,
                       stop: asyncio.Event | None = None) -> Report:
    """Run ``workload`` (a Workload, a built-in name or a YAML path) against ``target_url`` and return its Report.

    duration_s / max_requests / concurrency / seed override the workload's own bounds (the run always stops at
    both bounds; requests still in flight get at most 30 s more, then are cancelled and counted "unfinished").
    model: the model name to send (default: the workload's, else the first of ``GET /v1/models``). api_key:
    sent by tenants that have no key of their own. out_dir: also write report.json, requests.jsonl, PNG plots
    and report.html there. progress: draw a progress bar when on a terminal (never under CI=true).
    stop: setting this event ends the run early: no more sends, requests in flight are cancelled ("unfinished")
    and the report covers what was measured so far.
    Raises WorkloadError for a bad workload or target.
    """
    wl = load_workload(workload) if isinstance(workload, str) else workload
    wl = wl.with_overrides(duration_s=duration_s, max_requests=max_requests, concurrency=concurrency,
                           model=model, seed=seed)
    base_url = normalize_target(target_url)
    api_keys = {t.name: t.api_key or api_key for t in wl.tenants}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        model_name = wl.model or await discover_model(session, base_url, next(iter(api_keys.values()), None))
        target = Target(base_url=base_url, model=model_name, stream=wl.stream,
                        request_timeout_s=wl.request_timeout_s, extra_body=wl.extra_body)
        runner = Runner(target, wl, api_keys, Progress(progress_wanted(progress)), stop)
        result = await runner.run(session)
    report = Report.build(target=base_url, workload=wl, mode=result.mode, duration_s=result.duration_s,
                          started_at=result.started_at, requests=result.requests, workflows=result.workflows,
                          model=model_name)
    if out_dir is not None:
        # Plotting takes a second or two: keep it off the event loop (the demo serves from the same loop).
        await asyncio.to_thread(report.write, out_dir)
    return report
