"""resources/fetchers.py: git clones from a real bundle made here, swapped in atomically; bad sources fail
with a clear error and never run a command or destroy the checkout that was there."""

import subprocess
from pathlib import Path

import pytest

from resources.fetchers import FetchError, git_clone, git_head, remote_head

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]


def _git(*args, cwd) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict:
    """A two-commit repository as a git bundle: {"bundle": path, "first": sha, "second": sha}."""
    root = tmp_path_factory.mktemp("fetchers")
    repo = root / "origin"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    (repo / "a.txt").write_text("one\n")
    _git("add", "a.txt", cwd=repo)
    _git("commit", "-q", "-m", "one", cwd=repo)
    first = _git("rev-parse", "HEAD", cwd=repo)
    (repo / "a.txt").write_text("two\n")
    _git("commit", "-q", "-am", "two", cwd=repo)
    second = _git("rev-parse", "HEAD", cwd=repo)
    _git("bundle", "create", "-q", str(root / "origin.bundle"), "--all", cwd=repo)
    return {"bundle": root / "origin.bundle", "repo": repo, "first": first, "second": second}


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}"))


def test_a_bundle_clones_at_a_commit_and_a_new_commit_is_swapped_in(bundle, tmp_path):
    dest = tmp_path / "clones" / "repo"
    assert git_clone(str(bundle["bundle"]), dest, bundle["first"]) == bundle["first"]
    assert (dest / "a.txt").read_text() == "one\n" and git_head(dest) == bundle["first"]
    assert git_clone(str(bundle["bundle"]), dest, bundle["second"]) == bundle["second"]
    assert (dest / "a.txt").read_text() == "two\n"
    assert _leftovers(dest.parent, "repo") == []  # no temporary clone or old copy is left beside it


def test_without_a_commit_the_default_branch_is_checked_out(bundle, tmp_path):
    assert git_clone(str(bundle["bundle"]), tmp_path / "repo") == bundle["second"]


def test_a_checkout_at_the_asked_commit_is_kept_as_it_is(bundle, tmp_path):
    dest = tmp_path / "repo"
    git_clone(str(bundle["bundle"]), dest, bundle["first"])
    (dest / "untracked.txt").write_text("still here\n")
    assert git_clone(str(bundle["bundle"]), dest, bundle["first"][:12]) == bundle["first"]  # an abbreviated sha
    assert (dest / "untracked.txt").read_text() == "still here\n"


def test_a_plain_path_and_a_file_url_clone_too(bundle, tmp_path):
    assert git_clone(str(bundle["repo"]), tmp_path / "by-path") == bundle["second"]
    assert git_clone(bundle["repo"].as_uri(), tmp_path / "by-url", bundle["first"]) == bundle["first"]


def test_a_missing_commit_names_it_and_leaves_the_old_checkout(bundle, tmp_path):
    dest = tmp_path / "repo"
    git_clone(str(bundle["bundle"]), dest, bundle["first"])
    with pytest.raises(FetchError, match=f"commit {'0' * 40} not found in .*origin.bundle"):
        git_clone(str(bundle["bundle"]), dest, "0" * 40)
    assert git_head(dest) == bundle["first"] and (dest / "a.txt").read_text() == "one\n"
    assert _leftovers(tmp_path, "repo") == []


def test_a_bundle_that_is_not_a_bundle_fails_and_keeps_the_old_checkout(bundle, tmp_path):
    dest = tmp_path / "repo"
    git_clone(str(bundle["bundle"]), dest, bundle["first"])
    fake = tmp_path / "fake.bundle"
    fake.write_bytes(b"PK\x03\x04 this is a zip file, not a git bundle\n")
    with pytest.raises(FetchError, match="git clone .*fake.bundle.* failed"):
        git_clone(str(fake), dest, bundle["second"])
    assert git_head(dest) == bundle["first"]
    with pytest.raises(FetchError, match="failed"):
        git_clone(str(fake), tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists() and _leftovers(tmp_path, "fresh") == []


def test_a_truncated_bundle_fails(bundle, tmp_path):
    cut = tmp_path / "cut.bundle"
    cut.write_bytes(bundle["bundle"].read_bytes()[:200])
    with pytest.raises(FetchError):
        git_clone(str(cut), tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_a_missing_source_fails_with_its_name(tmp_path):
    with pytest.raises(FetchError, match="no-such-repo"):
        git_clone(str(tmp_path / "no-such-repo"), tmp_path / "repo")


@pytest.mark.parametrize("source", ["ext::sh -c touch% {marker}", "fd::17", "--upload-pack=touch {marker};",
                                    "-u touch {marker};", "--config=core.sshCommand=touch {marker}"])
def test_command_transports_and_option_sources_never_run_a_command(tmp_path, source):
    marker = tmp_path / "MARKER"
    source = source.format(marker=marker)
    with pytest.raises(FetchError):
        git_clone(source, tmp_path / "repo")
    assert remote_head(source) is None
    assert not marker.exists()
    assert not (tmp_path / "repo").exists()


def test_remote_head_reads_the_head_without_cloning(bundle, tmp_path):
    assert remote_head(str(bundle["bundle"])) == bundle["second"]
    assert remote_head(str(bundle["repo"]), "refs/heads/main") == bundle["second"]
    assert remote_head(str(bundle["repo"]), "refs/heads/no-such-branch") is None
    assert remote_head(str(tmp_path / "missing")) is None
