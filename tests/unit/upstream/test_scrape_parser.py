"""Prometheus text parsing into BackendLoad (no network)."""

from __future__ import annotations

import pytest

from tokenyard.upstream.scrape import metrics_url, parse_backend_load, parse_samples

VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 7.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B"} 5.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 3.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.61
# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 12800.0
vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1.7e+09
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 9600.0
vllm:generation_tokens_total{model_name="m"} 123456.0
"""


def test_parses_vllm_page_summing_engines() -> None:
    load = parse_backend_load(VLLM_PAGE, scraped_at=42.0)
    assert load.running == 12 and load.waiting == 3
    assert load.kv_usage == pytest.approx(0.61)
    assert load.prefix_cache_queries == 12800 and load.prefix_cache_hits == 9600
    assert load.scraped_at == 42.0 and load.age(43.5) == 1.5


def test_missing_metrics_read_as_zero_or_none() -> None:
    load = parse_backend_load("# nothing here\nother_metric 1\n", scraped_at=0)
    assert (load.running, load.waiting, load.kv_usage) == (0, 0, 0)
    assert load.prefix_cache_hits is None and load.prefix_cache_queries is None


def test_old_vllm_names_and_no_labels() -> None:
    page = "vllm:num_requests_running 2\nvllm:gpu_cache_usage_perc 0.3\nvllm:gpu_prefix_cache_hits_total 5\n"
    load = parse_backend_load(page, 0)
    assert load.running == 2 and load.kv_usage == pytest.approx(0.3) and load.prefix_cache_hits == 5


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('m{a="x,y",b="q\\"}uote"} 3', {"m": [3.0]}),
        ("m 4 1700000000000", {"m": [4.0]}),
        ("m{} 1e3", {"m": [1000.0]}),
        ("m +Inf", {"m": [float("inf")]}),
        ('m{a="unterminated 5', {}),
        ("m notanumber", {}),
        ("m", {}),
        ("   ", {}),
        ("\tm\t7", {"m": [7.0]}),
    ],
)
def test_sample_lines(line: str, expected: dict[str, list[float]]) -> None:
    assert parse_samples(line) == expected


def test_nan_and_inf_are_ignored_for_load() -> None:
    page = "vllm:num_requests_running NaN\nvllm:num_requests_waiting +Inf\nvllm:kv_cache_usage_perc 3.0\n"
    load = parse_backend_load(page, 0)
    assert load.running == 0 and load.waiting == 0 and load.kv_usage == 1.0


def test_garbage_never_raises() -> None:
    parse_backend_load("\x00\x01{{{ }}} \n# TYPE\n{a=1} 2\nvllm:num_requests_running{", 0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9001/v1", "http://127.0.0.1:9001/metrics"),
        ("http://127.0.0.1:9001/v1/", "http://127.0.0.1:9001/metrics"),
        ("http://127.0.0.1:9001", "http://127.0.0.1:9001/metrics"),
    ],
)
def test_metrics_url(url: str, expected: str) -> None:
    assert metrics_url(url) == expected


def test_only_the_wanted_names_are_read_and_lookalikes_are_not() -> None:
    page = (
        "# HELP vllm:num_requests_running the running ones\n"
        'vllm:num_requests_running{engine="0"} 2\r\n'
        "  vllm:num_requests_running 3\n"
        "vllm:num_requests_running_total 100\n"  # a longer name that starts like the wanted one
        'other{note="vllm:num_requests_running 50"} 1\n'  # the name inside a label value
        'vllm:num_requests_waiting{model_name="a}b"} 4'  # no trailing newline; a brace inside quotes
    )
    samples = parse_samples(page, frozenset({"vllm:num_requests_running", "vllm:num_requests_waiting"}))
    assert samples == {"vllm:num_requests_running": [2.0, 3.0], "vllm:num_requests_waiting": [4.0]}
    assert parse_samples(page)["other"] == [1.0]  # without ``only`` every metric is read
