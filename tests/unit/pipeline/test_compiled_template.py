"""The compiled template (parsed once per pipeline) renders exactly what ``render`` (str.format machinery) does,
and leaves templates it cannot reproduce to ``render``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenyard.pipeline.transforms import CompiledTemplate, PermanentError, render

FIELDS: dict[str, Any] = {"text": "hi {there}", "n": 3, "x": 1.5, "ok": True, "none": None,
                          "user": {"name": "ann", "tags": ["a", "b"]}, "empty": "", "0": "zero"}


def _outcome(fn: Any, *args: Any) -> tuple[str, str]:
    try:
        return "ok", fn(*args)
    except PermanentError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("text", [
    "Summarize: {text}", "{user.name} said {text}", "{user}", "{user.tags}", "{n}/{x}/{ok}/{none}/{empty}",
    "{{literal}} {text}}}", "no fields at all", "", "{missing}", "{user.age}", "{text.deeper}",
])
def test_simple_templates_are_compiled_and_render_the_same(text: str) -> None:
    compiled = CompiledTemplate(text)
    assert compiled.compiled
    assert _outcome(compiled, FIELDS) == _outcome(render, text, FIELDS)


@pytest.mark.parametrize("text", ["{n:>5}", "{text!r}", "{}", "{0}", "{unclosed", "a } b", "{user[name]}",
                                  "{n:{x}}"])
def test_other_templates_keep_str_format(text: str) -> None:
    compiled = CompiledTemplate(text)
    if text in ("{unclosed", "a } b", "{n:>5}", "{text!r}", "{}", "{0}", "{n:{x}}"):
        assert not compiled.compiled
    assert _outcome(compiled, FIELDS) == _outcome(render, text, FIELDS)


_piece = st.one_of(st.text(alphabet="ab {}:!.", max_size=6),
                   st.sampled_from(["{text}", "{n}", "{user.name}", "{user}", "{missing}", "{{", "}}"]))


@given(st.lists(_piece, max_size=6))
def test_any_template_renders_like_str_format(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert _outcome(CompiledTemplate(text), FIELDS) == _outcome(render, text, FIELDS)
