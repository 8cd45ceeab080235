"""A real editor: headless Neovim (Debian's 0.7) runs `python -m lsp` as docs/lsp.md configures it for 0.7
(`vim.lsp.start_client` + `vim.lsp.buf_attach_client`), asks for a completion, runs the "add docstring" code
action (resolved, then applied by Neovim's own `apply_workspace_edit`), and writes what it got as JSON
(neovim/drive.lua). The model is the scripted endpoint of conftest.py, so the answers are exact."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("neovim") / "drive.lua"


def _nvim() -> str:
    found = shutil.which("nvim")
    if not found:  # on CI a missing editor is a set-up bug (scripts/setup.sh installs neovim)
        why = "neovim (Debian package) is missing: run scripts/setup.sh as root"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    return found


def test_neovim_gets_a_completion_and_applies_the_docstring_action(tmp_path, stub):
    nvim = _nvim()
    (tmp_path / "calc.py").write_text("def add(a, b):\n    ret\n")
    stub.default = "urn a + b\n"
    stub.answers = [("Write the docstring for `add`", "Add two numbers.")]
    out = tmp_path / "out.json"
    env = {**os.environ, "HRM_WS": str(tmp_path), "HRM_PYTHON": sys.executable, "HRM_SPEC": stub.spec,
           "HRM_OUT": str(out), "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)}
    run = subprocess.run([nvim, "--headless", "--clean", "-u", "NONE", "-c", f"luafile {DRIVER}"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got["initialized"] is True
    items = got["completion"]["items"]
    assert [i["textEdit"]["newText"] for i in items] == ["urn a + b"]
    assert items[0]["textEdit"]["range"]["start"] == {"line": 1, "character": 7}
    assert "HRM: add docstring" in [a["title"] for a in got["actions"]]
    assert got["text"] == 'def add(a, b):\n    """Add two numbers."""\n    ret'
