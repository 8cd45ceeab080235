"""Multi-file tasks from a tiny two-file package made here: single-file bugs combined, validated with the real
Sandbox (the union, then every one-file-only fix), the gold SEARCH/REPLACE answer, the split and the prompt."""

import json
import subprocess
import textwrap

import pytest

from datagen.swe.multifile import (MultiFileSettings, build_multifile_tasks, combinations, component_split,
                                   fix_blocks, gold_answer, patched_files)
from datagen.swe.repos import baseline_row, parse_repo_spec
from model.edits import apply_edits

PRICES = textwrap.dedent('''
    def discount(price):
        """The price after the 10% discount."""
        return round(price * 0.9, 2)


    def with_tax(price, rate=0.2):
        return round(price * (1 + rate), 2)
''')
CART = textwrap.dedent('''
    from tinyshop.prices import discount, with_tax


    def total(prices):
        """What the customer pays: every price discounted, summed, then taxed."""
        return with_tax(sum(discount(p) for p in prices))


    def count(prices):
        return len(prices)
''')
TESTS = textwrap.dedent('''
    from tinyshop.cart import count, total
    from tinyshop.prices import discount, with_tax

    def test_discount():
        assert discount(100) == 90

    def test_with_tax():
        assert with_tax(10) == 12

    def test_total():
        assert total([100, 50]) == 162

    def test_count():
        assert count([1, 2, 3]) == 3
''')
# file -> (name, old text, new text): A and B cancel out in total(); C is independent of both
BUGS = {"A": ("tinyshop/prices.py", "return round(price * 0.9, 2)", "return round(price * 1.8, 2)"),
        "B": ("tinyshop/cart.py", "sum(discount(p) for p in prices)", "sum(discount(p) for p in prices) / 2"),
        "C": ("tinyshop/cart.py", "return len(prices)", "return len(prices) + 1")}
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}


def make_shop_repo(root):
    """The package, its tests, committed; returns the repo path."""
    repo = root / "tinyshop"
    (repo / "tinyshop").mkdir(parents=True)
    (repo / "tinyshop" / "__init__.py").write_text("")
    (repo / "tinyshop" / "prices.py").write_text(PRICES)
    (repo / "tinyshop" / "cart.py").write_text(CART)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_shop.py").write_text(TESTS)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "shop"]):
        subprocess.run(cmd, cwd=repo, check=True, env={**GIT_ENV, "HOME": str(root)})
    return repo


def bug_rows(repo_row):
    """swesmith_tasks-like rows for the hand-made bugs (their patch: `git diff` of the change)."""
    rows = []
    for name, (path, old, new) in BUGS.items():
        target = f"{repo_row['repo_dir']}/{path}"
        clean = open(target).read()
        open(target, "w").write(clean.replace(old, new))
        patch = subprocess.run(["git", "diff"], cwd=repo_row["repo_dir"], capture_output=True, text=True,
                               check=True).stdout
        open(target, "w").write(clean)
        rows.append({"instance_id": f"local__tinyshop.{repo_row['commit'][:8]}.hand_{name}__{name * 8}",
                     "patch": patch, "files": [path], "source": "generated", "base_commit": repo_row["commit"],
                     "bug_type": "hand", "entity": name, "FAIL_TO_PASS": [], "PASS_TO_PASS": []})
    return rows


def blocks_of(answer, path):
    """The blocks of a multi-file answer that edit `path` (each follows a line naming its file)."""
    chunks = answer.split(">>>>>>> REPLACE\n")
    return "".join(c + ">>>>>>> REPLACE\n" for c in chunks if c.strip() and c.lstrip("\n").startswith(path + "\n"))


def shop_tasks(root, sandbox):
    """(swe_repos row, component bug rows, task rows, rejected, stats) of the tiny shop."""
    repo = make_shop_repo(root)
    repo_row = baseline_row(sandbox, parse_repo_spec(str(repo)), root / "work")
    bugs = bug_rows(repo_row)
    settings = MultiFileSettings(test_percent=0, max_uses_per_bug=5, max_tasks_per_repo=5)
    rows, rejected, stats = build_multifile_tasks(sandbox, repo_row, bugs, settings)
    return repo_row, bugs, rows, rejected, stats


@pytest.fixture(scope="module")
def shop(tmp_path_factory, sandbox):
    return shop_tasks(tmp_path_factory.mktemp("multifile"), sandbox)


@pytest.mark.slow
def test_two_bugs_in_two_files_make_one_validated_task(shop):
    repo_row, bugs, rows, rejected, stats = shop
    assert repo_row["n_passed"] == 4
    assert stats["candidates"] == 2  # B and C share a file: never combined
    (row,) = rows
    assert json.loads(row["components"]) == sorted([bugs[0]["instance_id"], bugs[2]["instance_id"]])
    assert json.loads(row["files"]) == ["tinyshop/cart.py", "tinyshop/prices.py"] and row["n_files"] == 2
    assert sorted(row["FAIL_TO_PASS"]) == ["tests/test_shop.py::test_count", "tests/test_shop.py::test_discount",
                                           "tests/test_shop.py::test_total"]
    assert row["PASS_TO_PASS"] == ["tests/test_shop.py::test_with_tax"]
    # A and B cancel in total(): fixing prices.py alone passes every FAIL_TO_PASS test of their union
    (lost,) = rejected
    assert "alone resolves" in lost["reason"]
    assert row["task_type"] == "diff_edit" and row["language"] == "python" and row["stage"] == 3
    assert row["split"] == "train" and row["example_id"] == row["instance_id"]
    assert ".combine_files__" in row["instance_id"]


@pytest.mark.slow
def test_gold_answer_turns_the_buggy_files_into_the_clean_ones(shop):
    repo_row, _, rows, _, _ = shop
    row = rows[0]
    buggy = patched_files(repo_row["repo_dir"], row["patch"])
    assert set(buggy) == {"tinyshop/cart.py", "tinyshop/prices.py"}
    answer = row["answer"]
    assert answer.count("<<<<<<< SEARCH") == 2
    for path, text in buggy.items():
        assert apply_edits(text, blocks_of(answer, path)) == open(f"{repo_row['repo_dir']}/{path}").read()
    # the prompt shows the problem, the repository map and both buggy files, and never the fix
    prompt = row["prompt"]
    assert row["problem_statement"].strip() in prompt and "Repository map:" in prompt
    assert "price * 1.8" in prompt and "len(prices) + 1" in prompt and "price * 0.9" not in prompt
    assert gold_answer(repo_row["repo_dir"], row["patch"]) == answer


def test_fix_blocks_are_unique_and_minimal():
    buggy = "a = 1\nx = 0\nb = 2\nx = 0\nc = 3\n"
    clean = "a = 1\nx = 0\nb = 2\nx = 1\nc = 3\n"
    blocks = fix_blocks(buggy, clean)
    # "x = 0" alone matches twice: one line of context on each side makes it unique
    assert len(blocks) == 1 and blocks[0].search == "b = 2\nx = 0\nc = 3\n"
    assert fix_blocks("p\nq\n", "p\nr\nq\ns\n")  # insertions, at the end too


def test_split_keeps_component_bugs_on_one_side():
    bugs = [{"instance_id": f"r.{i:03d}", "files": [f"f{i % 4}.py"], "patch": ""} for i in range(40)]
    groups = combinations(bugs, MultiFileSettings(test_percent=40, max_tasks_per_repo=100, max_uses_per_bug=100))
    assert groups and all(len({b["files"][0] for b in g}) == 2 for g in groups)
    sides = [{component_split(b["instance_id"], 40) for b in g} for g in groups]
    assert all(len(s) == 1 for s in sides) and {"train", "test"} == set().union(*sides)
    capped = combinations(bugs, MultiFileSettings(test_percent=40, max_tasks_per_repo=100, max_uses_per_bug=2))
    uses = [b["instance_id"] for g in capped for b in g]
    assert max(uses.count(u) for u in set(uses)) <= 2


# --- interface changes: a rename finished in some callers, forgotten in one ---------------------------------
CHECKOUT = textwrap.dedent('''
    from tinyshop import prices


    def receipt(price):
        return f"{prices.discount(price):.2f}"
''')
RECEIPT_TEST = textwrap.dedent('''
    from tinyshop.checkout import receipt

    def test_receipt():
        assert receipt(10) == "9.00"
''')


@pytest.fixture(scope="module")
def renamed_shop(tmp_path_factory, sandbox):
    root = tmp_path_factory.mktemp("interface")
    repo = make_shop_repo(root)
    (repo / "tinyshop" / "checkout.py").write_text(CHECKOUT)
    (repo / "tests" / "test_receipt.py").write_text(RECEIPT_TEST)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env={**GIT_ENV, "HOME": str(root)})
    subprocess.run(["git", "commit", "-qm", "checkout"], cwd=repo, check=True, env={**GIT_ENV, "HOME": str(root)})
    repo_row = baseline_row(sandbox, parse_repo_spec(str(repo)), root / "work")
    return repo_row, build_multifile_tasks(sandbox, repo_row, [], MultiFileSettings(test_percent=0))


def test_interface_bugs_rename_the_definer_and_all_but_one_caller(tmp_path):
    from datagen.swe.interface import interface_bugs

    repo = make_shop_repo(tmp_path)
    (repo / "tinyshop" / "checkout.py").write_text(CHECKOUT)
    bugs = interface_bugs(repo, "p")
    assert {(b["entity"], b["forgotten"]) for b in bugs} == {("discount", "tinyshop/cart.py"),
                                                             ("discount", "tinyshop/checkout.py")}
    bug = next(b for b in bugs if b["forgotten"] == "tinyshop/checkout.py")
    assert sorted(bug["file_patches"]) == ["tinyshop/cart.py", "tinyshop/prices.py"]
    assert "+def _discount(price):" in bug["file_patches"]["tinyshop/prices.py"]
    assert "+from tinyshop.prices import _discount, with_tax" in bug["file_patches"]["tinyshop/cart.py"]
    assert "sum(_discount(p) for p in prices)" in bug["file_patches"]["tinyshop/cart.py"]


@pytest.mark.slow
def test_interface_change_tasks_are_validated_like_combined_bugs(renamed_shop):
    repo_row, (rows, rejected, stats) = renamed_shop
    assert stats["candidates"] == 0 and stats["interface_candidates"] == 2
    assert stats["interface_tasks"] == len(rows) >= 1
    for row in rows:
        assert ".rename_api__" in row["instance_id"] and row["n_files"] == 2 and json.loads(row["components"]) == []
        assert row["FAIL_TO_PASS"] and row["split"] == "train"
        buggy = patched_files(repo_row["repo_dir"], row["patch"])
        for path, text in buggy.items():
            assert apply_edits(text, blocks_of(row["answer"], path)) == open(f"{repo_row['repo_dir']}/{path}").read()


def test_a_long_statement_is_cut_in_the_prompt():
    from datagen.swe.multifile import head_lines

    statement = "Several tests fail:\n" + "".join(f"- tests/test_x.py::test_{i}\n" for i in range(500))
    cut = head_lines(statement, 60, len)
    assert len(cut) < 120 and cut.startswith("Several tests fail:\n") and cut.endswith("more lines)")
    assert head_lines("short", 60, len) == "short"
