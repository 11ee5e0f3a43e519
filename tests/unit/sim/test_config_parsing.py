"""Profiles, parameter overrides, fault fields, fleet files and the toy tokenizer."""

from __future__ import annotations

import pytest

from tokenyard.sim.faults import FaultConfig, FaultInjector, parse_faults
from tokenyard.sim.fleet import FleetError, parse_fleet
from tokenyard.sim.params import PROFILES, profile
from tokenyard.sim.text import block_hashes, count_tokens, render_chat


def test_profiles_and_overrides() -> None:
    assert set(PROFILES) >= {"fast", "large"}
    assert profile("large").replace(max_num_seqs=8).max_num_seqs == 8
    with pytest.raises(ValueError, match="unknown"):
        profile("huge")
    with pytest.raises(ValueError, match="unknown simulator parameter"):
        profile("fast").replace(bogus=1)
    for bad in ({"max_num_seqs": 0}, {"jitter": 1.5}, {"load_factor": 0.5}, {"output_len_dist": "zipf"}):
        with pytest.raises(ValueError):
            profile("fast").replace(**bad)


def test_fault_parsing_merges_and_clears() -> None:
    cfg = parse_faults({"error_rate": 0.2, "error_status": 503})
    cfg = parse_faults({"hang_rate": 0.1}, cfg)
    assert cfg.error_rate == 0.2 and cfg.hang_rate == 0.1 and cfg.error_status == 503
    assert parse_faults({"clear": True, "capacity_slots": 3}, cfg) == FaultConfig(capacity_slots=3)
    for bad in ({"error_rate": -1}, {"hang_rate": True}, {"error_status": 404}, {"capacity_slots": 1.5}, []):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_fault_decisions_are_seeded_and_aligned() -> None:
    cfg = FaultConfig(error_rate=0.5, error_status=429)
    a = [FaultInjector(cfg, 1).decide() for _ in range(1)]
    first, second = FaultInjector(cfg, 1), FaultInjector(cfg, 1)
    assert [first.decide() for _ in range(50)] == [second.decide() for _ in range(50)]
    assert a  # decisions exist for every request, faulted or not
    none = FaultInjector(FaultConfig(), 1)
    assert not any(none.decide().any for _ in range(20))


def test_fleet_file_parsing() -> None:
    specs = parse_fleet([
        {"name": "chat", "kind": "llm", "profile": "fast", "port": 0, "overrides": {"max_num_seqs": 4},
         "faults": {"error_rate": 0.1}},
        {"kind": "retrieval", "overrides": {"miss_rate": 0.2}},
        {"kind": "tool"},
    ])
    assert [s.kind for s in specs] == ["llm", "retrieval", "tool"]
    assert specs[0].params is not None and specs[0].params.max_num_seqs == 4
    assert specs[0].faults.error_rate == 0.1
    assert specs[1].name == "retrieval-1" and specs[1].service["miss_rate"] == 0.2
    assert parse_fleet({"sims": [{"kind": "tool"}]})[0].kind == "tool"
    for bad in ([], [{"kind": "gpu"}], [{"port": "x"}], [{"wat": 1}], [{"overrides": {"nope": 1}}],
                [{"kind": "tool", "overrides": {"miss_rate": 3}}], [{"faults": {"error_rate": 9}}]):
        with pytest.raises(FleetError):
            parse_fleet(bad)


def test_tokenizer_and_chat_rendering() -> None:
    assert count_tokens("") == 1 and count_tokens("abcd") == 1 and count_tokens("abcde") == 2
    prompt = render_chat([{"role": "user", "content": "hi"}, {"role": "user", "content": [{"type": "text",
                                                                                            "text": "yo"}]}])
    assert prompt == "<|user|>hi\n<|user|>yo\n<|assistant|>"
    long = "x" * 200
    assert len(block_hashes(long)) == 3  # 200 chars = 50 tokens = 3 full blocks
    assert block_hashes(long + "tail")[:3] == block_hashes(long)  # chained: a shared prefix shares hashes
    assert block_hashes("y" + long)[0] != block_hashes(long)[0]
