"""Prompt text matching: the lexical backend always, MiniLM when the [text] extra is installed."""

from __future__ import annotations

import pytest

from tastemaker.encoders.text import LexicalTextEncoder, get_text_encoder, minilm_available, tokens

DOCS = ["warm film golden hour cafe", "cool moody noir night rain", ""]


def test_tokens_fold_synonyms_and_plurals() -> None:
    assert tokens("Golden CAFES, noir!") == ["warm", "cafe", "moody"]


def test_lexical_ranks_the_matching_doc_first() -> None:
    sims = LexicalTextEncoder().similarity("sunset glow, vintage", DOCS)
    assert sims[0] > sims[1] and sims[2] == 0.0
    assert LexicalTextEncoder().similarity("", DOCS).tolist() == [0.0, 0.0, 0.0]


def test_forced_lexical() -> None:
    assert get_text_encoder("lexical").name == "lexical"
    with pytest.raises(ValueError):
        get_text_encoder("bogus")


@pytest.mark.text
@pytest.mark.skipif(not minilm_available(), reason="needs the [text] extra")
def test_minilm_same_interface_and_semantics() -> None:
    enc = get_text_encoder("minilm")
    sims = enc.similarity("a dark rainy evening in the city", DOCS)
    assert sims.shape == (3,) and sims[1] > sims[0] and sims[2] == 0.0
    assert get_text_encoder("auto").name == "minilm"


@pytest.mark.text
@pytest.mark.skipif(not minilm_available(), reason="needs the [text] extra")
def test_minilm_loads_offline_without_touching_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The packaged weights load with local_files_only; the process environment is left as it was."""
    import os

    from tastemaker.encoders import text

    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    text._load_minilm.cache_clear()
    before = dict(os.environ)
    assert get_text_encoder("minilm").similarity("dark rain", ["a rainy night"])[0] > 0
    assert dict(os.environ) == before
