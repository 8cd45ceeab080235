"""The two held-out splits of the synthetic tasks (new instances of training templates; whole held-out
templates) never show a program that training shows, and the corpus files held out for code-bpb never
reach the training examples or the tokenizer."""

from collections import Counter

import pytest

from datagen import curriculum, synthetic


def test_heldout_instances_never_repeat_a_training_program_even_when_a_template_runs_out():
    # collatz has 39 distinct Python programs: the held-out instances take theirs first (10), so training
    # gets fewer than the 30 it asks for and never one of them
    cfg = synthetic.SyntheticConfig(exec_per_template=30, languages=("python",), heldout_exec_tasks=90)
    plan = synthetic.exec_program_plan(cfg)
    train = [(t.name, synthetic.program_key(src)) for t, _, src, heldout in plan if not heldout]
    held = [(t.name, synthetic.program_key(src)) for t, _, src, heldout in plan if heldout == "instances"]
    assert not {key for _, key in held} & {key for _, key in train}
    assert len({key for _, key in held}) == len(held)  # no held-out program twice either
    assert len({key for _, key in train}) == len(train)
    assert len([k for n, k in held if n == "collatz"]) == 10  # ceil(90 / 9 templates)
    assert 0 < len([k for n, k in train if n == "collatz"]) <= 29
    assert len([k for n, k in held if n == "arith"]) == 10
    assert synthetic.exec_program_plan(cfg) == plan  # seeded: the same plan every time


def test_heldout_instances_do_not_depend_on_the_training_size():
    small, large = (synthetic.SyntheticConfig(exec_per_template=n, languages=("python",)) for n in (2, 40))
    held = [[src for _, _, src, heldout in synthetic.exec_program_plan(cfg) if heldout] for cfg in (small, large)]
    assert held[0] == held[1]


def test_heldout_split_sizes_spread_over_templates_and_languages():
    cfg = synthetic.SyntheticConfig(exec_per_template=2)
    plan = synthetic.exec_program_plan(cfg)
    count = Counter(heldout for *_, heldout in plan)
    assert count["instances"] >= cfg.heldout_exec_tasks and count["templates"] >= cfg.heldout_exec_tasks
    held_templates = {t.name for t, *_, heldout in plan if heldout == "templates"}
    assert held_templates == {t.name for t in synthetic.EXEC_TEMPLATES} & set(cfg.heldout_templates)
    assert not held_templates & {t.name for t, *_, heldout in plan if heldout != "templates"}


def test_training_leaks_finds_a_heldout_program_that_differs_only_in_whitespace():
    train = {"task_id": "a", "split": "train", "program": "x = 1\nprint(x + 2)\n"}
    same = {"task_id": "b", "split": "test", "program": "x = 1\n\nprint(x  +  2)"}
    other = {"task_id": "c", "split": "test", "program": "x = 1\nprint(x + 3)\n"}
    assert [t["task_id"] for t in synthetic.training_leaks([train, same, other])] == ["b"]


@pytest.fixture(scope="module")
def generated(sandbox):
    # Python only, many training repairs: product_range's code never varies, so its few mutants repeat
    cfg = synthetic.SyntheticConfig(exec_per_template=2, repair_per_template=6, languages=("python",),
                                    heldout_exec_tasks=9, heldout_repair_tasks=10)
    return cfg, synthetic.generate_synthetic_tasks(sandbox, cfg)


@pytest.mark.slow
def test_generated_heldout_tasks_are_apart_from_training_and_labelled(generated):
    cfg, result = generated
    tasks = result.tasks
    assert synthetic.training_leaks(tasks) == []
    assert len({t["task_id"] for t in tasks}) == len(tasks)
    for t in tasks:
        assert (t["split"] == "test") == bool(t["heldout"]) and t["heldout"] in ("", *synthetic.HELDOUT_SPLITS)
    train_templates = {t["template"] for t in tasks if t["split"] != "test"}
    instances = [t for t in tasks if t["heldout"] == "instances"]
    templates = [t for t in tasks if t["heldout"] == "templates"]
    assert {t["template"] for t in instances} <= train_templates
    assert {t["template"] for t in templates} == set(cfg.heldout_templates) and not train_templates & set(cfg.heldout_templates)
    by_type = Counter((t["heldout"], t["task_type"]) for t in tasks if t["heldout"])
    assert by_type[("instances", "exec_predict")] == 9 and by_type[("templates", "exec_predict")] == 9
    assert by_type[("instances", "repair")] >= 8 and by_type[("templates", "repair")] == 10
    # the repair mutants of held-out instances avoid the training mutants of the same template
    train_mutants = {synthetic.program_key(t["program"]) for t in tasks if t["task_type"] == "repair" and not t["heldout"]}
    assert not train_mutants & {synthetic.program_key(t["program"]) for t in instances if t["task_type"] == "repair"}


@pytest.mark.slow
def test_heldout_tasks_stay_out_of_the_training_split_of_the_examples(generated):
    _, result = generated
    rows, rejected = curriculum.build_training_examples(curriculum.synthetic_examples(result.tasks))
    assert not rejected
    held_ids = {t["task_id"] for t in result.tasks if t["heldout"]}
    assert {r["split"] for r in rows if r["example_id"] in held_ids} == {"test"}
    train_prompts = "\n".join(r["prompt"] for r in rows if r["split"] == "train")
    for t in result.tasks:
        if t["heldout"]:
            assert t["program"] not in train_prompts, t["task_id"]


def test_every_language_with_two_files_holds_one_out_and_examples_follow_it():
    rows = [{"doc_id": f"{lang}-{i}", "language": lang, "text": f"def f{i}(x):\n    '''Doc.'''\n    return x + {i}\n"}
            for lang, n in (("python", 3), ("go", 1)) for i in range(n)]
    held = curriculum.heldout_doc_ids(rows)
    assert len([d for d in held if d.startswith("python")]) >= 1 and not [d for d in held if d.startswith("go")]
    assert curriculum.heldout_doc_ids(list(reversed(rows))) == held
    examples = curriculum.corpus_examples(rows)
    for doc in rows[:3]:  # the Python files
        ex = [e for e in examples if f"def f{doc['doc_id'][-1]}(x)" in e["prompt"]]
        assert [e["split"] for e in ex] == ["validation" if doc["doc_id"] in held else "train"]


def test_the_tokenizer_never_sees_heldout_corpus_files_or_heldout_tasks(tmp_path):
    from datagen import pipeline
    from resources.warehouse import Warehouse

    wh = Warehouse(root=str(tmp_path))
    common = "def add(a, b):\n    return a + b\n" * 20
    corpus = [{"doc_id": f"d{i}", "language": "python", "text": common, "n_bytes": len(common), "origin": f"{i}"}
              for i in range(3)]
    held = curriculum.heldout_doc_ids(corpus)
    for row in corpus:
        if row["doc_id"] in held:
            row["text"] = "zqvxjk_only_heldout = 1\n" * 400
    task = {"task_id": "t", "task_type": "exec_predict", "template": "x", "language": "python", "answer": "1\n",
            "program": "", "split": "train", "heldout": "", "prompt": common}
    tasks = [task, {**task, "task_id": "h", "split": "test", "heldout": "instances",
                    "prompt": "wbmfyq_only_test = 2\n" * 400}]
    wh.write_table("code_corpus", corpus)
    wh.write_table("synthetic_tasks", tasks)
    pipeline.build_tokenizer(pipeline.TokenizerSettings(vocab_size=400), wh)
    from model.tokenizer import CodeTokenizer

    tok = CodeTokenizer.load(wh.tokenizer_dir())
    assert len(tok.encode("zqvxjk_only_heldout")) >= 8  # no merge was learnt from the held-out file
    assert len(tok.encode("wbmfyq_only_test")) >= 8
    assert len(tok.encode("return a + b")) <= 6
