"""Token data: collation, the resumable language-balanced sampler, shard loading that names bad rows."""

import json

import pytest
import torch

from model.data import IGNORE, BalancedSampler, BatchStream, Example, TokenDataset, collate, load_shards


@pytest.fixture
def shards(token_shards):
    return token_shards


def test_collate_shifts_labels_onto_answer_positions():
    e = Example([5, 6, 7, 8, 9], prompt_len=2, language=1, task=2, edit_tags=[1, 0, -1], tool_label=-1,
                example_id="x")
    b = collate([e, Example([3, 4, 5], 1, 0, 0, [], 4, "y")], pad_to_multiple=8)
    assert b["input_ids"].shape == (2, 8)
    assert b["labels"][0].tolist() == [IGNORE, 7, 8, 9] + [IGNORE] * 4  # <|answer|> at 1 predicts 7
    assert b["labels"][1].tolist() == [4, 5] + [IGNORE] * 6
    assert b["edit_tags"][0, :4].tolist() == [1, 0, IGNORE, IGNORE]
    assert b["tool_labels"].tolist() == [IGNORE, 4]
    assert b["prompt_len"].tolist() == [2, 1] and b["language_ids"].tolist() == [1, 0]


def test_sampler_resumes_exactly_and_balances_languages():
    examples = [Example([1, 2], 1, 0, 0, [], -1, f"a{i}") for i in range(30)]
    examples += [Example([1, 2], 1, 5, 0, [], -1, f"b{i}") for i in range(3)]
    data = TokenDataset.from_examples(examples)
    a = BalancedSampler(data, seed=3, language_balance=0.0)
    for _ in range(4):
        a.draw(5)
    saved = json.loads(json.dumps(a.state_dict()))
    expected = [a.draw(5) for _ in range(6)]
    b = BalancedSampler(data, seed=3, language_balance=0.0)
    b.load_state_dict(saved)
    assert [b.draw(5) for _ in range(6)] == expected
    drawn = [i for batch in expected for i in batch]
    rare = sum(1 for i in drawn if examples[i].language == 5)
    assert 8 <= rare <= 22  # about half of 30 draws, though only 3 of 33 examples are that language
    assert BalancedSampler(data, seed=4).draw(20) != BalancedSampler(data, seed=3).draw(20)


def test_task_weights_draw_language_task_groups_and_resume_exactly():
    from model.vocab import task_id

    codegen, repair = task_id("codegen"), task_id("repair")
    examples = [Example([1, 2], 1, 4, codegen, [], -1, f"c{i}") for i in range(90)]
    examples += [Example([1, 2], 1, 4, repair, [], -1, f"r{i}") for i in range(10)]
    data = TokenDataset.from_examples(examples)

    def repair_share(sampler):
        drawn = [i for _ in range(40) for i in sampler.draw(10)]
        return sum(examples[i].task == repair for i in drawn) / len(drawn)

    # one language: without weights repair comes up as often as in the data (10 %); with its weight 9 x
    # (count ** 0 = 1 per group) it is drawn nine times as often as codegen
    assert repair_share(BalancedSampler(data, seed=1, language_balance=0.0)) < 0.2
    assert repair_share(BalancedSampler(data, seed=1, language_balance=0.0, task_weights={"repair": 9})) > 0.8
    # count ** 1 x weight 9: 90 vs 90, about half
    assert 0.35 < repair_share(BalancedSampler(data, seed=1, language_balance=1.0, task_weights={"repair": 9})) < 0.65
    a = BalancedSampler(data, seed=2, task_weights={"repair": 3})
    a.draw(7)
    saved = json.loads(json.dumps(a.state_dict()))
    expected = [a.draw(5) for _ in range(4)]
    b = BalancedSampler(data, seed=2, task_weights={"repair": 3})
    b.load_state_dict(saved)
    assert [b.draw(5) for _ in range(4)] == expected
    with pytest.raises(ValueError, match="sampler state groups"):  # language groups vs (language, task) groups
        BalancedSampler(data, seed=2).load_state_dict(saved)
    with pytest.raises(ValueError, match="every task in the data has weight 0"):
        BalancedSampler(data, task_weights={"repair": 0, "codegen": 0})


def test_train_config_refuses_bad_task_weights():
    from model.train import TrainConfig

    assert TrainConfig(task_weights={"repair": 2, "exec_predict": 1.5}).task_weights["repair"] == 2
    for bad in ({"poetry": 1.0}, {"repair": -1}, {"repair": "2"}):
        with pytest.raises(ValueError, match="TrainConfig.task_weights"):
            TrainConfig(task_weights=bad)


def test_load_shards_reads_split_and_names_bad_rows(shards, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files, _ = shards
    train_rows, val_rows = load_shards(files, "train"), load_shards(files, "validation")
    assert len(train_rows) == 20 and len(val_rows) == 4
    first = pq.read_table(files[0]).to_pylist()[0]
    assert train_rows.example(0).input_ids == first["input_ids"] and train_rows.example(0).example_id == "python-0"
    cut = load_shards(files, max_seq_len=8)
    assert cut.truncated == 20 and len(cut.example(0).input_ids) == 8 and cut.example(0).prompt_len <= 8
    table = pq.read_table(files[0]).to_pylist()
    table[1]["prompt_len"] = 0
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(files[0])), bad)
    with pytest.raises(ValueError, match=r"bad.parquet row 1 .*prompt_len=0"):
        load_shards([str(bad)])
    with pytest.raises(ValueError, match="token id outside"):
        load_shards(files, vocab_size=10)


def test_micro_batches_cut_by_length_hold_the_same_examples_within_the_token_budget():
    lengths = [5, 40, 7, 33, 12, 60, 3, 9]
    data = TokenDataset.from_examples([Example(list(range(3, 3 + n)), 1, language=4, task=1, edit_tags=[], tool_label=-1,
                                               example_id=str(n))
                                       for n in lengths])
    uncut = BatchStream(data, 8, seed=1).step_batches(1)
    cut = BatchStream(data, 8, seed=1, max_tokens=64).step_batches(1)
    assert len(uncut) == 1 and len(cut) > 2
    assert all(b["input_ids"].numel() <= 64 or b["input_ids"].shape[0] == 1 for b in cut)
    real = lambda batches: sorted(int((b["input_ids"][r] != 0).sum()) for b in batches for r in range(len(b["input_ids"])))
    assert real(cut) == real(uncut)
    assert sum(b["input_ids"].numel() for b in cut) < uncut[0]["input_ids"].numel()
    assert len(BatchStream(data, 8, seed=1, max_tokens=64, pad_to=64).step_batches(1)) == 1  # fixed shapes: uncut


def test_packed_micro_batches_hold_the_same_documents_in_fewer_padded_tokens():
    lengths = [5, 40, 7, 33, 12, 60, 3, 9]
    data = TokenDataset.from_examples([Example(list(range(3, 3 + n)), 1, language=4, task=1, edit_tags=[],
                                               tool_label=-1, example_id=str(n)) for n in lengths])
    uncut = BatchStream(data, 8, seed=1).step_batches(1)
    for max_tokens in (0, 64):
        packed = BatchStream(data, 8, seed=1, pack_to=64, max_tokens=max_tokens).step_batches(1)
        docs = sorted(int(n) for b in packed for row in b["doc_ids"] for n in row[row >= 0].bincount())
        assert docs == sorted(lengths)
        assert all(b["input_ids"].shape[1] <= 64 for b in packed)
        assert sum(b["input_ids"].numel() for b in packed) < uncut[0]["input_ids"].numel()
        # position restarts at every document
        for b in packed:
            starts = (b["positions"] == 0) & (b["doc_ids"] >= 0)
            assert int(starts.sum()) == int(sum(row[row >= 0].unique().numel() for row in b["doc_ids"]))
    assert "doc_ids" not in BatchStream(data, 8, seed=1, pack_to=64, pad_to=64).step_batches(1)[0]  # fixed: unpacked


def test_prefetched_steps_are_the_streams_steps_and_the_saved_sampler_state_is_the_consumed_ones():
    from model.data import StepPrefetcher

    data = TokenDataset.from_examples([Example(list(range(3, 3 + n)), 1, language=n % 3, task=1, edit_tags=[],
                                               tool_label=-1, example_id=str(n)) for n in range(4, 40)])
    plain = BatchStream(data, 4, seed=7, max_tokens=64)
    feeder = StepPrefetcher(BatchStream(data, 4, seed=7, max_tokens=64), grad_accum=2, depth=3)
    try:
        for _ in range(5):
            expected, got = plain.step_batches(2), feeder.next()
            assert len(expected) == len(got)
            for a, b in zip(expected, got):
                assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            # the worker has drawn ahead; the state to checkpoint is the one after the steps handed out
            assert feeder.sampler_state() == plain.sampler.state_dict()
    finally:
        feeder.close()
    assert not feeder._thread.is_alive()


def test_a_failing_batch_build_is_raised_by_the_trainer_side():
    from model.data import StepPrefetcher

    data = TokenDataset.from_examples([Example([3, 4, 5], 1, language=0, task=0, edit_tags=[], tool_label=-1,
                                               example_id="only")])
    stream = BatchStream(data, 2, seed=0, pack_to=2)  # a 3-token example cannot be packed into rows of 2
    feeder = StepPrefetcher(stream, grad_accum=1)
    try:
        with pytest.raises(ValueError, match="above the packing capacity 2"):
            feeder.next()
    finally:
        feeder.close()


def test_memory_mapped_tokens_read_like_the_shards_and_are_rebuilt_when_a_shard_changes(shards, tmp_path):
    import os
    from pathlib import Path

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from model.data import load_shards_mapped

    import shutil

    files = [shutil.copy(f, tmp_path / Path(f).name) for f in shards[0]]  # the shards fixture is shared: copies
    plain = load_shards(files, max_seq_len=16)
    cache = tmp_path / "cache"
    mapped = load_shards_mapped(files, str(cache), max_seq_len=16)
    assert isinstance(mapped.tokens, np.memmap) and len(mapped) == len(plain)
    assert [mapped.example(i) for i in range(len(plain))] == [plain.example(i) for i in range(len(plain))]
    assert mapped.truncated == plain.truncated
    copies = sorted(p.name for p in cache.iterdir())
    assert len(copies) == 1 and copies[0].startswith("tokens-train-")
    again = load_shards_mapped(files, str(cache))  # reused, not rewritten
    assert sorted(p.name for p in cache.iterdir()) == copies and again.example_ids == plain.example_ids
    # a shard rewritten with a bad row: a new key, and the error names the file and row; no copy is left
    table = pq.read_table(files[0]).to_pylist()
    table[0]["prompt_len"] = 0
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(files[0])), files[0])
    os.utime(files[0], ns=(1, 1))
    with pytest.raises(ValueError, match=r"shard-0.parquet row 0 .*prompt_len=0"):
        load_shards_mapped(files, str(cache))
    assert sorted(p.name for p in cache.iterdir()) == copies
