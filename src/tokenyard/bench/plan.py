"""Turning a workload into concrete user actions: pure and seeded, one independent RNG per action index.

Action ``i`` is the same for a given seed whatever the run mode (open or closed loop) and whatever happened to
actions before it, so two runs of one workload against two targets send the same requests.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from tokenyard.bench.workload import WorkflowSpec, Workload

# Short common English words: about one token each in the usual BPE vocabularies, so N words ~ N tokens.
_WORDS = (
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are", "as",
    "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by", "word", "but",
    "not", "what", "all", "were", "we", "when", "your", "can", "said", "there", "use", "an", "each",
    "which", "she", "do", "how", "their", "if", "will", "up", "other", "about", "out", "many", "then",
    "them", "these", "so", "some", "her", "would", "make", "like", "him", "into", "time", "has", "look",
    "two", "more", "write", "go", "see", "number", "no", "way", "could", "people", "my", "than",
    "first", "water", "been", "call", "who", "oil", "its", "now", "find", "long", "down", "day", "did",
    "get", "come", "made", "may", "part",
)
T = TypeVar("T")


@dataclass(frozen=True)
class Generation:
    """One chat completion request: its prompt, the tokens asked for and when the user gives up (if ever)."""

    prompt: str
    prompt_tokens: int
    max_tokens: int
    shared_prefix: int | None = None
    abandon_after_ms: float | None = None
    abandon_after_tokens: int | None = None


@dataclass(frozen=True)
class Retrieval:
    """A retrieval call; on failure the next generation goes ahead without the context (a fallback)."""

    url: str
    query: str
    top_k: int
    timeout_ms: float
    context: str  # prepended to the next generation's prompt when the retrieval succeeds


@dataclass(frozen=True)
class ToolCall:
    url: str
    tool: str
    arguments: str


Step = Generation | Retrieval | ToolCall


@dataclass(frozen=True)
class Action:
    """One user action (a workflow instance) and who sends it."""

    index: int
    workflow: str
    kind: str
    cls: str
    tenant: str
    workflow_id: str
    steps: tuple[Step, ...]


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def shared_prefixes(workload: Workload) -> list[str]:
    """The K shared prefixes, fixed by the seed (the same in every action)."""
    spec = workload.shared_prefix
    if spec.share <= 0:
        return []
    rng = random.Random(f"{workload.seed}:prefixes")
    return [f"[context {k}] " + words(rng, max(0, spec.tokens - 2)) for k in range(spec.count)]


def plan_action(workload: Workload, index: int, prefixes: Sequence[str] | None = None) -> Action:
    """The ``index``-th user action of ``workload``."""
    rng = random.Random(f"{workload.seed}:action:{index}")
    prefixes = shared_prefixes(workload) if prefixes is None else prefixes
    workflow = _weighted(rng, workload.workflows, [w.weight for w in workload.workflows])
    cls = _weighted(rng, workload.classes, [c.weight for c in workload.classes])
    tenant = _weighted(rng, workload.tenants, [t.weight for t in workload.tenants])
    workflow_id = f"wf-{workload.seed}-{index}"
    return Action(index=index, workflow=workflow.name, kind=workflow.kind, cls=cls.name, tenant=tenant.name,
                  workflow_id=workflow_id, steps=_steps(workload, workflow, rng, prefixes, index))


def _steps(workload: Workload, workflow: WorkflowSpec, rng: random.Random, prefixes: Sequence[str],
           index: int) -> tuple[Step, ...]:
    if workflow.kind == "chat":
        return (_generation(workload, rng, prefixes, index, 0),)
    if workflow.kind == "rag":
        query = words(rng, 12)
        if workflow.retrieval_url is None:
            # No retrieval service: the retrieved context is only simulated as a longer prompt.
            return (_generation(workload, rng, prefixes, index, 0, extra_tokens=workflow.context_tokens),)
        context = "[retrieved] " + words(rng, max(1, workflow.context_tokens - 3))
        return (Retrieval(url=workflow.retrieval_url, query=query, top_k=workflow.top_k,
                          timeout_ms=workflow.retrieval_timeout_ms, context=context),
                _generation(workload, rng, prefixes, index, 0))
    steps: list[Step] = [_generation(workload, rng, prefixes, index, 0)]
    for hop in range(1, workflow.steps + 1):
        if workflow.tool_url is not None:
            tool = workflow.tools[(hop - 1) % len(workflow.tools)]
            steps.append(ToolCall(url=workflow.tool_url, tool=tool, arguments=words(rng, 6)))
        steps.append(_generation(workload, rng, prefixes, index, hop))
    return tuple(steps)


def _generation(workload: Workload, rng: random.Random, prefixes: Sequence[str], index: int, hop: int,
                extra_tokens: int = 0) -> Generation:
    prompt_tokens = workload.prompt_tokens.sample(rng) + extra_tokens
    max_tokens = workload.output_tokens.sample(rng)
    prefix_id: int | None = None
    parts: list[str] = []
    if prefixes and rng.random() < workload.shared_prefix.share:
        prefix_id = rng.randrange(len(prefixes))
        parts.append(prefixes[prefix_id])
    # The unique part starts with the action index so no two prompts share more than the intended prefix.
    parts.append(f"[request {index}.{hop}] " + words(rng, max(1, prompt_tokens - 3)))
    total = prompt_tokens + (workload.shared_prefix.tokens if prefix_id is not None else 0)
    ab = workload.abandonment
    abandon = ab.probability > 0 and rng.random() < ab.probability
    return Generation(
        prompt=" ".join(parts), prompt_tokens=total, max_tokens=max_tokens, shared_prefix=prefix_id,
        abandon_after_ms=ab.after_ms if abandon else None,
        abandon_after_tokens=ab.after_tokens if abandon else None,
    )


def _weighted(rng: random.Random, items: Sequence[T], weights: Sequence[float]) -> T:
    if sum(weights) <= 0:
        return items[0]
    return rng.choices(items, weights=weights)[0]
