"""The tagger's descriptions by word root, its bare-name rule, and the held-out hygiene of its cue phrases."""

from __future__ import annotations

from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.feed.stems import roots, same_root
from headatlas.literature.feed.tag_eval import bootstrap_ci, is_held_out, measure_tagging
from headatlas.literature.feed.tagging import _words, default_tagger, shipped_cues
from headatlas.literature.vocabulary import vocabulary

_STOP = {"a", "an", "the", "of", "in", "and", "or", "to", "on", "for", "with", "by", "versus", "from"}


def _covers(phrase: str, text: str) -> bool:
    """Every content word of ``phrase`` occurs, by root, somewhere in ``text``."""
    words = _words(text)
    return all(any(same_root(a, b) for b in words) for a in _words(phrase) if a not in _STOP)


def test_word_roots_join_agent_nouns_and_verbs() -> None:
    for a, b in [("summarizer", "summarise"), ("summary", "summarise"), ("reader", "reads"), ("mover", "moving"),
                 ("gatherer", "gathers"), ("suppression", "suppresses"), ("copying", "copied"), ("queried", "query"),
                 ("processing", "processes"), ("retrieval", "retrieve"), ("faithfulness", "faithful")]:  # fmt: skip
        assert same_root(a, b), (a, b)
    for a, b in [("reader", "real"), ("name", "number"), ("mover", "model"), ("letter", "let")]:
        assert not same_root(a, b), (a, b)
    assert roots("the") == {"the"}


def test_a_description_names_multi_word_types() -> None:
    tagger = default_tagger()
    tags = tagger.tag("Sentiment", "We find a sentiment direction and the heads that summarise and read it.")
    assert {"sentiment_summarizer", "summary_reader"} <= set(tags.head_types)
    logic = tagger.tag("Logic", "Separate head families locate the queried rule, move it and process facts.")
    assert {"queried_rule_locating", "queried_rule_mover", "fact_processing"} <= set(logic.head_types)
    assert logic.sentence_for("fact_processing").startswith("Separate head families")
    # the words must sit close together, in a sentence that mentions heads
    far = "The summary of this long paper, written mainly for the many busy readers, describes heads."
    assert "summary_reader" not in tagger.tag("x", far).head_types
    assert "summary_reader" not in tagger.tag("x", "Readers of the summary like it.").head_types
    # words already part of a name are not read again: "negative name mover heads" is not also a name mover
    assert tagger.tag("x", "Negative name mover heads write against the answer.").head_types == ("negative_name_mover",)


def test_a_name_with_a_function_word_inside_needs_the_word_heads() -> None:
    tagger = default_tagger()
    assert "cot" not in tagger.tag("Faithful reasoning", "Chain of thought in attention heads of Llama.").head_types
    assert "cot" in tagger.tag("x", "We find chain-of-thought heads in Llama.").head_types
    assert "name_mover" in tagger.tag("x", "Name movers copy the name.").head_types  # no function word: bare


def test_cues_that_fire_on_held_out_papers_come_from_definitions_or_dev_papers() -> None:
    """Evaluation data stays out of the cue list: a phrase that matches a held-out paper's text must be attested,
    word by word, in its type's vocabulary entry or in a dev paper that carries the type."""
    vocab = vocabulary()
    papers = load_catalogue().papers
    held = [p.title + " " + p.summary.text() for p in papers if is_held_out(p.title)]
    assert held
    unattested = []
    for head_id, phrases in shipped_cues().items():
        term = vocab.terms[head_id]
        entry = " ".join([term.name, *term.aliases, term.definition])
        dev = [p.title + " " + p.summary.text() for p in papers if not is_held_out(p.title) and head_id in p.head_types]
        for phrase in phrases:
            if any(_covers(phrase, text) for text in held) and not (
                _covers(phrase, entry) or any(_covers(phrase, text) for text in dev)
            ):
                unattested.append((head_id, phrase))
    assert unattested == []


def test_tag_figures_carry_a_bootstrap_interval_and_reach_the_target() -> None:
    held = measure_tagging()["held_out"]
    low, high = held["ci95"]["recall"]  # type: ignore[index]
    assert low < held["recall"] < high  # type: ignore[operator]
    assert held["recall"] >= 0.6 and held["precision"] >= 0.8
    assert bootstrap_ci([(1, 0, 0)] * 5) == {"precision": [1.0, 1.0], "recall": [1.0, 1.0]}
    assert bootstrap_ci([]) == {"precision": [0.0, 0.0], "recall": [0.0, 0.0]}
