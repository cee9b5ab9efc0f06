"""Relevance model, tagging and summary: deterministic, held-out set kept apart, figures above target."""

from __future__ import annotations

import json

import pytest

from headatlas.bench import feed as feed_bench
from headatlas.bench import relevance as relevance_bench
from headatlas.literature.catalogue import load_catalogue
from headatlas.literature.feed.relevance import (
    THRESHOLD,
    RelevanceModel,
    default_model,
    evaluation_set,
    folds,
    operating_threshold,
    title_key,
    training_set,
)
from headatlas.literature.feed.summary import ExtractiveSummariser, Summariser, split_sentences
from headatlas.literature.feed.tagging import default_tagger
from headatlas.literature.identity import title_key as normalise_title
from headatlas.literature.schema import Summary


def test_training_and_evaluation_sets_are_disjoint() -> None:
    train = {normalise_title(e.title) for e in training_set()}
    held_out = evaluation_set()
    assert len(held_out) >= 90 and sum(not e.label for e in held_out) >= 75
    assert {e.origin for e in held_out} == {"real"}  # no invented papers
    assert not train & {normalise_title(e.title) for e in held_out}
    assert sum(e.label for e in training_set()) == len([e for e in training_set() if e.origin == "catalogue"])


def test_cross_validation_never_scores_a_paper_its_model_saw() -> None:
    splits = folds(5)
    scored = [title_key(e.title) for _, test in splits for e in test]
    assert len(scored) == len(set(scored)) == len(load_catalogue().papers) + len(evaluation_set())
    for train, test in splits:
        assert not {title_key(e.title) for e in train} & {title_key(e.title) for e in test}
        assert any(e.origin == "catalogue" for e in test)  # catalogue papers are held out too, fold by fold


def test_operating_threshold_comes_from_training_data() -> None:
    threshold = operating_threshold(training_set())
    assert 0.05 <= threshold <= THRESHOLD
    assert default_model().threshold == threshold


def test_bootstrap_interval_brackets_the_point_estimate() -> None:
    truth = [True] * 40 + [False] * 40
    predicted = [True] * 36 + [False] * 4 + [True] * 6 + [False] * 34
    point = relevance_bench.prf(truth, predicted)
    ci = relevance_bench.bootstrap_ci(truth, predicted, n=500)
    assert ci["precision"][0] < point["precision"] < ci["precision"][1]
    assert ci["recall"][0] < point["recall"] < ci["recall"][1]
    assert ci == relevance_bench.bootstrap_ci(truth, predicted, n=500)  # seeded


def test_model_is_deterministic() -> None:
    docs = [(e.title, e.abstract) for e in evaluation_set()]
    a = RelevanceModel(training_set()).scores(docs)
    b = RelevanceModel(training_set()).scores(docs)
    assert a.tobytes() == b.tobytes()


def test_shipped_model_on_the_held_out_real_papers() -> None:
    held_out = evaluation_set()
    verdicts = default_model().judge([(e.title, e.abstract) for e in held_out])
    tp = sum(e.label and v.relevant for e, v in zip(held_out, verdicts, strict=True))
    fp = sum(v.relevant and not e.label for e, v in zip(held_out, verdicts, strict=True))
    fn = sum(e.label and not v.relevant for e, v in zip(held_out, verdicts, strict=True))
    negatives = sum(not e.label for e in held_out)
    # few positives here (the curated list's papers are scored by cross-validation in the benchmark), so hold
    # the shipped model to recall and to its false-positive rate on the real hard negatives
    assert tp / (tp + fn) >= 0.9 and fp / negatives <= 0.15


def test_hard_negatives_with_heads_in_another_sense() -> None:
    (medusa, gqa, heads) = default_model().judge(
        [
            (
                "Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding Heads",
                "Extra decoding heads.",
            ),
            ("GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints", "Grouped KV."),
            ("Successor heads in the wild", "We find attention heads that increment ordinal tokens in GPT-2."),
        ]
    )
    assert not medusa.relevant and not gqa.relevant and heads.relevant
    assert heads.head_types == ("successor",) and heads.why[0] == "successor heads"


def test_tagger_aliases_stages_models_and_candidates() -> None:
    tags = default_tagger().tag(
        "Binding heads and S--Inhibition heads",
        "In Llama-2-7B and GPT-2 small, name mover heads copy names; the safety heads of Qwen2 and the "
        "multi-head attention of Mistral are left alone. We call the new ones binding heads.",
    )
    assert tags.head_types == ("name_mover", "s_inhibition", "safety")
    assert "s inhibition heads" in tags.matched
    assert set(tags.models) == {"GPT-2", "Llama", "Mistral", "Qwen"}
    assert tags.candidates == ("binding head",)
    assert "LR" in tags.stages and "ICI" in tags.stages
    assert default_tagger().tag("Detection accuracy of convolutional networks", "").head_types == ()


def test_summary_template_and_determinism() -> None:
    abstract = (
        "Long-context inference is costly. We propose HeadKV, which gives each attention head its own cache "
        "budget. Experiments on LongBench with Llama-3-8B evaluate question answering. Keeping 1.5% of the "
        "cache preserves 97% of accuracy."
    )
    s = ExtractiveSummariser()
    first = s.summarise("HeadKV", abstract)
    assert first == s.summarise("HeadKV", abstract)
    assert first.innovation.startswith("We propose HeadKV")
    assert first.tasks.startswith("Experiments on LongBench")
    assert first.result.startswith("Keeping 1.5%")
    assert isinstance(s, Summariser)
    assert s.summarise("Only a title", "").innovation == "Only a title"
    assert split_sentences("We use e.g. patching. It works.") == ["We use e.g. patching.", "It works."]
    assert isinstance(first, Summary)
    long = " ".join(
        f"We propose method number {i} which improves every benchmark by {i}% on many tasks." for i in range(9)
    )
    words = [w for w in s.summarise("Long", long).text().split() if w != "…"]
    assert len(words) <= 60


def test_benchmarks_print_json_last(capsys) -> None:
    assert relevance_bench.main(["--features", "tfidf"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["precision"] >= 0.85 and last["recall"] >= 0.9 and last["n_eval"] >= 170
    assert last["precision_ci95"][0] < last["precision"] < last["precision_ci95"][1]
    assert feed_bench.main(["--entries", "60", "--page-size", "20"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["entries"] == 60 and last["rerun_added"] == 0 and last["pending"] == 30


def test_tagger_reads_lists_cues_and_keeps_the_supporting_sentence() -> None:
    tagger = default_tagger()
    tags = tagger.tag(
        "Summing up the facts",
        "We study factual recall in Llama. Attribution separates subject, relation and mixed heads. "
        "The model learns in-context learning tasks.",
    )
    assert {"subject", "relation", "mixed"} <= set(tags.head_types)
    assert "in_context" not in tags.head_types  # "in-context learning" is not an in-context head
    assert tags.sentence_for("relation") == "Attribution separates subject, relation and mixed heads."
    cued = tagger.tag("Where long context goes", "A small set of attention heads drives long-context retrieval.")
    assert cued.head_types == ("retrieval",)
    assert cued.sentence_for("retrieval").startswith("A small set of attention heads")
    # a describing phrase alone does not tag a paper that says nothing of heads, attention or circuits
    assert tagger.tag("Dense retrievers", "We improve long-context retrieval with better negatives.").head_types == ()
    paren = tagger.tag("Roles of heads", "Role analysis (positional, syntactic, rare words) of encoder heads.")
    assert {"positional", "syntactic"} <= set(paren.head_types)


def test_coined_head_type_becomes_a_proposal_with_its_sentence() -> None:
    tags = default_tagger().tag(
        "Evaluator heads in LLM judges", "We find evaluator heads that score answers. They sit in late layers."
    )
    assert tags.candidates == ("evaluator head",)
    assert tags.sentence_for("evaluator head") == "Evaluator heads in LLM judges"


def test_tagging_benchmark_figures_on_held_out_papers() -> None:
    from headatlas.literature.feed.tag_eval import is_held_out, measure_tagging

    result = measure_tagging()
    held, dev = result["held_out"], result["dev"]
    assert held["papers"] + dev["papers"] == len(load_catalogue().papers)
    assert held["papers"] == sum(is_held_out(p.title) for p in load_catalogue().papers) > 20
    assert held["precision"] >= 0.8 and held["recall"] >= 0.6


def test_evaluation_set_refuses_invented_papers(monkeypatch) -> None:
    from headatlas.literature.feed import relevance

    rows = [["1", "synthetic", "Heads that detect negation", "An invented paper."]]
    monkeypatch.setattr(relevance, "_read_tsv", lambda name: rows)
    with pytest.raises(ValueError, match="real papers only"):
        relevance.evaluation_set()


def test_tagger_reads_heads_named_by_what_they_serve() -> None:
    tagger = default_tagger()
    assert tagger.tag("ASMR", "Finds heads tied to accuracy and to language coherence.").head_types == (
        "accuracy",
        "coherence",
    )
    assert tagger.tag("x", "We find heads responsible for safety in chat models.").head_types == ("safety",)
    assert tagger.tag("x", "Heads important for the task in Llama.").head_types == ()
