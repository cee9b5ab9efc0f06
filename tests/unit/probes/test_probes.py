from __future__ import annotations

import pytest
import torch

from headatlas.errors import InvalidSettingError
from headatlas.probes import PROBES, ProbeSettings, needle, repeated, text
from headatlas.testing.tiny import ByteTokenizer

SMALL = ProbeSettings(n_repeat=4, repeat_len=10, n_text=3, text_len=32, needle_contexts=(256, 300), batch_size=2)
TOK = ByteTokenizer(300)


# the census's own probes; task-defined probes (IOI, ...) need single-token words: tests/unit/heads/test_task_heads.py
@pytest.mark.parametrize("probe", [repeated.PROBE_ID, text.PROBE_ID, needle.PROBE_ID])
def test_same_seed_same_tokens_other_seed_other_tokens(probe):
    first = PROBES[probe](TOK, SMALL, 0)
    again = PROBES[probe](TOK, SMALL, 0)
    other = PROBES[probe](TOK, SMALL, 1)
    assert all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a.input_ids, b.input_ids) for a, b in zip(first, other, strict=True))
    for batch in first:
        assert torch.all(batch.input_ids[:, 0] == TOK.bos_token_id)


def test_repeated_tokens_are_two_copies_of_distinct_ordinary_tokens():
    batches = PROBES["repeated_tokens"](TOK, SMALL, 0)
    assert sum(b.input_ids.shape[0] for b in batches) == 4
    for batch in batches:
        assert batch.input_ids.shape[1] == 1 + 2 * 10
        x = batch.input_ids[:, 1:11]
        assert torch.equal(x, batch.input_ids[:, 11:])
        assert all(len(set(row.tolist())) == 10 for row in x)
        assert not torch.isin(x, torch.tensor(TOK.all_special_ids)).any()


def test_needle_answer_copies_the_needle_value_token_for_token():
    for batch in PROBES["needle"](TOK, SMALL, 3):
        ids = batch.input_ids[0]
        start, end = batch.extras["value_span"][0].tolist()
        value = ids[start:end]
        answer_rows = batch.rows[0]
        assert torch.equal(ids[answer_rows + 1], value)  # each row predicts the next value token
        assert int(answer_rows[-1]) == len(ids) - 2
        n_start, n_end = batch.extras["needle_span"][0].tolist()
        assert n_start <= start < end <= n_end
        assert abs(len(ids) - int(batch.extras["context"][0])) == 0


def test_needle_reaches_the_requested_context_lengths():
    lengths = [b.input_ids.shape[1] for b in PROBES["needle"](TOK, SMALL, 0)]
    assert lengths == [256, 256, 300, 300]


@pytest.mark.parametrize(
    "bad",
    [dict(repeat_len=2), dict(n_text=0), dict(needle_contexts=()), dict(needle_contexts=(100,)), dict(batch_size=-1)],
)
def test_bad_probe_settings_are_refused(bad):
    with pytest.raises(InvalidSettingError):
        ProbeSettings(**bad)
