"""Report files (json, png, html) and the `tokenyard bench` command line, including --compare."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

from click.testing import CliRunner

from tokenyard.bench import run_workload
from tokenyard.bench.cli import command
from tokenyard.bench.report import CLASS_KEYS, TOP_KEYS
from tokenyard.bench.workload import parse_workload

from .fake_openai import FakeState, running_fake

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def test_out_dir_gets_json_plots_and_a_self_contained_html(tmp_path: Path) -> None:
    wl = parse_workload({"arrival": {"kind": "poisson", "rate": 40}, "output_tokens": 4,
                         "classes": {"premium": {}, "standard": {}}})
    async with running_fake(FakeState()) as srv:
        await run_workload(srv.base_url, wl, duration_s=0.5, max_requests=12, out_dir=tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert all(k in data for k in TOP_KEYS)
    assert all(k in data["totals"] for k in CLASS_KEYS)
    assert len((tmp_path / "requests.jsonl").read_text().splitlines()) == data["totals"]["requests"]
    for name in ("ttft_cdf.png", "latency_over_time.png", "throughput_over_time.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    # Self-contained: no external scripts, stylesheets or images.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "premium" in html and "goodput" in html


async def test_cli_simple_load_then_compare(tmp_path: Path) -> None:
    async with running_fake(FakeState()) as srv:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tokenyard", "bench", "--target", srv.base_url, "--requests", "6",
            "--prompt-tokens", "32", "--output-tokens", "4", "--duration", "5", "--out", str(tmp_path / "a"),
            "--concurrency", "2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"CI": "true", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
        assert srv.state.chat_requests == 6
        assert all(h["Content-Length"] for h in srv.state.headers)
        # The same simple load, open loop, through the Python API.
        from tokenyard.bench.cli import simple_workload
        wl = simple_workload(rate=50, concurrency=None, requests=6, prompt_tokens=32, output_tokens=4, stream=None)
        await run_workload(srv.base_url, wl, duration_s=5, out_dir=tmp_path / "b")
    text = out.decode()
    assert "TOTAL" in text and "report written to" in text
    assert json.loads((tmp_path / "a" / "report.json").read_text())["mode"] == "closed"
    assert json.loads((tmp_path / "b" / "report.json").read_text())["mode"] == "open"

    result = CliRunner().invoke(command, ["--compare", str(tmp_path / "a"), str(tmp_path / "b"),
                                          "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert "TTFT p95 ms" in result.output
    assert "<table>" in (tmp_path / "cmp" / "compare.html").read_text()


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(command, []).exit_code == 2
    both = runner.invoke(command, ["--target", "http://127.0.0.1:1", "--rate", "1", "--concurrency", "1"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    missing = runner.invoke(command, ["--target", "http://127.0.0.1:1", "--workload", "nope"])
    assert missing.exit_code == 1 and "built-ins" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: {gold: {weight: -1}}\n")
    result = runner.invoke(command, ["--target", "http://127.0.0.1:1", "--workload", str(bad)])
    assert result.exit_code == 1 and "classes.gold.weight" in result.output
    notdir = runner.invoke(command, ["--compare", str(tmp_path), str(tmp_path)])
    assert notdir.exit_code == 1


async def test_sigint_ends_the_run_early_and_still_writes_the_report(tmp_path: Path) -> None:
    state = FakeState(itl_s=0.2)
    async with running_fake(state) as srv:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tokenyard", "bench", "--target", srv.base_url, "--concurrency", "2",
            "--output-tokens", "200", "--duration", "60", "--out", str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={"CI": "true", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
        )
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while state.chat_requests < 2:
                assert asyncio.get_running_loop().time() < deadline, "bench never sent"
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, out.decode()
        for _ in range(200):
            if state.disconnects == 2:
                break
            await asyncio.sleep(0.05)
    assert state.disconnects == 2  # the cancelled streams really closed their connections
    totals = json.loads((tmp_path / "report.json").read_text())["totals"]
    assert totals["requests"] == 2 and totals["unfinished"] == 2
