"""Demand maths and the forecast, against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from tokenyard.plan.demand import SECONDS_PER_MONTH, forecast_month, forecast_series, model_demands
from tokenyard.plan.spec import Forecast, parse_plan


def spec_data() -> dict[str, object]:
    return {
        "classes": {"premium": {"share": 1, "ttft_p95_ms": 500}, "standard": {"share": 3, "ttft_p95_ms": 2000}},
        "workflows": {
            "chat": {"share": 3, "hops": [{"model": "big", "prompt_tokens": 600, "output_tokens": 150}]},
            "agent": {"share": 1, "class_mix": {"premium": 1},
                      "hops": [{"model": "big", "requests": 4, "prompt_tokens": 1000, "output_tokens": 50},
                               {"model": "small", "requests": 2, "prompt_tokens": {"dist": "uniform", "min": 100,
                                                                                   "max": 300},
                                "output_tokens": 20}]},
        },
        "forecast": {"peak_actions_per_s": 10, "peak_to_mean": 4, "monthly_growth": 0.1, "months_ahead": 2,
                     "surge_multiplier": 2},
        "models": {"big": {"profile": "large"}, "small": {"profile": "large"}, "idle": {"profile": "fast"}},
    }


def test_requests_and_tokens_per_action() -> None:
    demands = model_demands(parse_plan(spec_data()))
    big, small, idle = demands["big"], demands["small"], demands["idle"]
    # chat: 3/4 of actions x 1 request; agent: 1/4 x 4 requests
    assert big.requests_per_action == pytest.approx(0.75 + 1.0)
    assert big.prompt_tokens_per_action == pytest.approx(0.75 * 600 + 1.0 * 1000)
    assert big.output_tokens_per_action == pytest.approx(0.75 * 150 + 1.0 * 50)
    assert big.mean_prompt_tokens == pytest.approx((450 + 1000) / 1.75)
    assert small.requests_per_action == pytest.approx(0.5)
    assert small.prompt_tokens_per_action == pytest.approx(0.5 * 200)  # uniform 100..300
    assert small.tokens_per_action == pytest.approx(0.5 * 220)
    assert idle.requests_per_action == 0 and idle.mean_output_tokens == 0
    assert big.request_rate(8.0) == pytest.approx(14.0)


def test_class_mix_global_and_per_workflow() -> None:
    big = model_demands(parse_plan(spec_data()))["big"]
    shares = big.class_shares()
    # chat splits 1:3 premium:standard, agent is all premium
    assert shares["premium"] == pytest.approx((0.75 * 0.25 + 1.0) / 1.75)
    assert shares["standard"] == pytest.approx(0.75 * 0.75 / 1.75)
    assert math.fsum(shares.values()) == pytest.approx(1.0)


def test_forecast_from_peak_rate_compounds_growth() -> None:
    f = Forecast(peak_actions_per_s=10, monthly_growth=0.1, months_ahead=2, peak_to_mean=4, surge_multiplier=2)
    series = forecast_series(f)
    assert [p.month for p in series] == [0, 1, 2]
    assert series[2].peak_actions_per_s == pytest.approx(10 * 1.1**2)
    assert series[2].mean_actions_per_s == pytest.approx(10 * 1.21 / 4)
    assert series[2].surge_actions_per_s == pytest.approx(10 * 1.21 * 2)
    assert series[0].actions_per_month == pytest.approx(2.5 * SECONDS_PER_MONTH)


def test_forecast_from_monthly_actions() -> None:
    f = Forecast(monthly_actions=2_628_000, monthly_growth=-0.5, months_ahead=1, peak_to_mean=3)
    now, later = forecast_month(f, 0), forecast_month(f, 1)
    assert now.mean_actions_per_s == pytest.approx(1.0)  # 730 h x 3600 s
    assert now.peak_actions_per_s == pytest.approx(3.0)
    assert now.surge_actions_per_s == pytest.approx(3.0)
    assert later.actions_per_month == pytest.approx(1_314_000)
