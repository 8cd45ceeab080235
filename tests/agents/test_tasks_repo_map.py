"""The repository map after a SWE task's statement: ranked from the statement, within its budget, and of the code
as the agent finds it (the bug applied), so it never shows what the fix restores."""

from agents.tasks import from_swesmith
from datagen.swe.repos import PreparedRepo


def test_a_swesmith_task_statement_carries_the_repository_map_when_asked(tmp_path):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "prices.py").write_text("def apply_discount(price, percent):\n    return price\n")
    (tmp_path / "shop" / "cart.py").write_text("from shop.prices import apply_discount\n\nclass Cart:\n    pass\n")
    repo = PreparedRepo(key="local__shop", spec=str(tmp_path), repo_dir=str(tmp_path), commit="0" * 40,
                        env_dir=str(tmp_path))
    row = {"instance_id": "shop.1", "problem_statement": "apply_discount ignores the percent", "patch": "",
           "FAIL_TO_PASS": ["tests/test_p.py::test_d"], "PASS_TO_PASS": []}
    plain = from_swesmith(row, repo)
    assert plain.problem_statement == "apply_discount ignores the percent"
    mapped = from_swesmith(row, repo, repo_map_tokens=64).problem_statement
    assert mapped.startswith("apply_discount ignores the percent\n\nRepository map")
    assert "shop/prices.py" in mapped and "def apply_discount(price, percent):" in mapped
    assert len(from_swesmith(row, repo, repo_map_tokens=8).problem_statement) < len(mapped)


def test_the_map_shows_the_buggy_code_not_a_function_the_bug_removed(tmp_path):
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "prices.py").write_text("def apply_discount(price, percent):\n    return price\n\n\n"
                                                 "def restore_price(price):\n    return price\n")
    repo = PreparedRepo(key="local__shop", spec=str(tmp_path), repo_dir=str(tmp_path), commit="0" * 40,
                        env_dir=str(tmp_path))
    removal = ("--- a/shop/prices.py\n+++ b/shop/prices.py\n@@ -1,6 +1,2 @@\n def apply_discount(price, percent):\n"
               "     return price\n-\n-\n-def restore_price(price):\n-    return price\n")
    row = {"instance_id": "shop.2", "problem_statement": "prices are wrong", "patch": removal,
           "FAIL_TO_PASS": ["tests/test_p.py::test_r"], "PASS_TO_PASS": []}
    mapped = from_swesmith(row, repo, repo_map_tokens=128).problem_statement
    assert "def apply_discount(price, percent):" in mapped and "restore_price" not in mapped
