"""Properties of the template meta parser (meta.yml): any file gives a TemplateMeta or names the template.

Marketers edit templates/<name>/meta.yml. `TemplateRenderer.meta()` must return the parsed meta or raise
TemplateSourceError naming "<template>/meta.yml"; the studio and `kizuna templates lint` show that message.
BROKEN_FILES are the cases this property found (tracebacks before meta.yml went through kizuna.core.yaml_files).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kizuna.email.render import TemplateMeta, TemplateRenderer, TemplateSourceError
from tests.email.conftest import SENDER, UNSUBSCRIBE_URL
from tests.reliability.conftest import examples

RELAXED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
_names = itertools.count()

META_YAMLISH = st.lists(
    st.one_of(
        st.sampled_from(
            ["description: d\n", "default_locale: ja\n", "from_name: ", "reply_to: ", "categories: [", "]", "\n",
             "unsubscribe_group: ", "variables: [greeting]\n", "sample_context: {greeting: こんにちは}\n",
             "sample_context:\n  a: ", ".nan", "1e400", "- ", "{", "}", ": ", ", ", "&a ", "*a", "!!binary ",
             "!!python/name:os.system ", "? ", "---\n", "'", '"', "\t", "  ", "~", "<<: ", "\ufeff", "\u2028"]
        ),
        st.text(max_size=5),
    ),
    max_size=20,
).map("".join)  # fmt: skip


def _meta(root: Path, data: bytes) -> TemplateMeta | TemplateSourceError:
    name = f"t{next(_names)}"  # a new folder each time: the renderer caches meta by modification time
    (root / name).mkdir(parents=True)
    (root / name / "meta.yml").write_bytes(data)
    renderer = TemplateRenderer(root, SENDER, UNSUBSCRIBE_URL, reload_seconds=0)
    try:
        return renderer.meta(name)
    except TemplateSourceError as exc:
        assert f"{name}/meta.yml" in str(exc), str(exc)
        return exc


@settings(max_examples=examples(100), suppress_health_check=RELAXED)
@given(text=st.one_of(META_YAMLISH, st.text(max_size=60)))
def test_any_text_gives_a_meta_or_an_error_naming_the_template(tmp_path: Path, text: str) -> None:
    meta = _meta(tmp_path, text.encode("utf-8", "surrogatepass"))
    if isinstance(meta, TemplateMeta):
        assert meta.description is not None and set(meta.variables) <= set(meta.sample_context)


BROKEN_FILES = [
    pytest.param(b"description: \xff\n", id="not-utf8-raises-UnicodeDecodeError"),
    pytest.param(b"description: d\nunsubscribe_group: " + b"1" * 5000 + b"\n", id="huge-integer-raises-ValueError"),
    pytest.param(b"description: d\nx: " + b"[" * 3000 + b"]" * 3000 + b"\n", id="deep-nesting-raises-RecursionError"),
]


@pytest.mark.parametrize("data", BROKEN_FILES)
def test_a_broken_meta_file_is_a_template_error(tmp_path: Path, data: bytes) -> None:
    assert isinstance(_meta(tmp_path, data), TemplateSourceError)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    assert isinstance(_meta(tmp_path, b"description: d\nreply_to: a@x.jp\nreply_to: b@y.jp\n"), TemplateSourceError)
