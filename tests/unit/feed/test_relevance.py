"""Relevance model, tagging and summary: deterministic, held-out set kept apart, figures above target."""

from __future__ import annotations

import json

from headatlas.bench import feed as feed_bench
from headatlas.bench import relevance as relevance_bench
from headatlas.literature.feed.relevance import (
    RelevanceModel,
    default_model,
    evaluation_set,
    keyword_baseline,
    training_set,
)
from headatlas.literature.feed.summary import ExtractiveSummariser, Summariser, split_sentences
from headatlas.literature.feed.tagging import default_tagger
from headatlas.literature.identity import title_key as normalise_title
from headatlas.literature.schema import Summary


def test_training_and_evaluation_sets_are_disjoint() -> None:
    train = {normalise_title(e.title) for e in training_set()}
    held_out = evaluation_set()
    assert len(held_out) >= 60 and sum(e.label for e in held_out) >= 25
    assert not train & {normalise_title(e.title) for e in held_out}
    assert sum(e.label for e in training_set()) == len([e for e in training_set() if e.origin == "catalogue"])


def test_model_is_deterministic() -> None:
    docs = [(e.title, e.abstract) for e in evaluation_set()]
    a = RelevanceModel(training_set()).scores(docs)
    b = RelevanceModel(training_set()).scores(docs)
    assert a.tobytes() == b.tobytes()


def test_held_out_precision_and_recall_beat_target_and_baseline() -> None:
    held_out = evaluation_set()
    verdicts = default_model().judge([(e.title, e.abstract) for e in held_out])
    tp = sum(e.label and v.relevant for e, v in zip(held_out, verdicts, strict=True))
    fp = sum(v.relevant and not e.label for e, v in zip(held_out, verdicts, strict=True))
    fn = sum(e.label and not v.relevant for e, v in zip(held_out, verdicts, strict=True))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert precision >= 0.85 and recall >= 0.85
    base_fp = sum(keyword_baseline(e.title, e.abstract) and not e.label for e in held_out)
    assert fp < base_fp  # the keyword filter passes papers with "heads" in another sense


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
    assert relevance_bench.main([]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["precision"] >= 0.85 and last["recall"] >= 0.85 and last["baseline_precision"] < last["precision"]
    assert feed_bench.main(["--entries", "60", "--page-size", "20"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["entries"] == 60 and last["rerun_added"] == 0 and last["pending"] == 30
