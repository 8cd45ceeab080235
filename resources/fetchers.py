"""Source fetchers: git repositories (URL, local path or bundle), written atomically."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class FetchError(RuntimeError):
    pass


def _git(*args: str, cwd: Path | None = None, timeout: float = 600) -> str:
    # only transports that move data (no ext::/fd:: command transports, whatever the config says)
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_LFS_SKIP_SMUDGE": "1",
           "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh"}
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise FetchError(f"git {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


def git_clone(source: str, dest: Path, commit: str | None = None) -> str:
    """Clone `source` (URL, path or .bundle) at `commit` into `dest`; returns the checked-out commit.

    An existing checkout at the same commit is kept; otherwise the new clone is made beside it and
    swapped in, so a failed fetch never destroys what was there.
    """
    dest = Path(dest)
    if (dest / ".git").is_dir():
        try:
            head = _git("rev-parse", "HEAD", cwd=dest)
            if commit is None or head == commit or head.startswith(commit):
                return head
        except FetchError:
            pass
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        # "--": a source that starts with "-" is a repository name, never an option (--upload-pack=...)
        _git("clone", "--quiet", "--no-checkout", "--", str(source), str(tmp / "repo"))
        repo = tmp / "repo"
        if commit:
            try:
                _git("checkout", "--quiet", "--detach", commit, cwd=repo)
            except FetchError as exc:
                raise FetchError(f"commit {commit} not found in {source}: {exc}") from exc
        else:
            _git("checkout", "--quiet", cwd=repo)
        head = _git("rev-parse", "HEAD", cwd=repo)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(repo, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return head
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def git_head(repo: Path) -> str:
    return _git("rev-parse", "HEAD", cwd=Path(repo))


def remote_head(source: str, ref: str = "HEAD") -> str | None:
    """The commit `ref` points to at `source` (None when it cannot be reached)."""
    try:
        out = _git("ls-remote", "--", str(source), ref, timeout=60)
    except (FetchError, subprocess.TimeoutExpired):
        return None
    return out.split()[0] if out else None
