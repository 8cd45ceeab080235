"""No code from a downloaded repository or package runs on the host.

A real hostile sdist (its in-tree build backend appends to a marker file on the host when imported)
is served from a local find-links directory and a file:// simple index made here; fetching it,
building an environment that asks for it, or pointing a requirement at it by URL, path or pip
option must leave the marker unwritten. Everything is local: no index on the network is used.
"""

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from datagen.swe import requirements as reqs
from datagen.swe.bugs import source_files
from datagen.swe.repos import RepoSpec, ensure_env, prepare_repo
from resources.fetchers import FetchError
from resources.pypi import fetch_sdist, sdist_metadata, unpack_sdist

BACKEND = """\
import os
with open({marker!r}, "a") as f:
    f.write("build backend ran on the host as uid %d\\n" % os.getuid())

def get_requires_for_build_wheel(config_settings=None):
    return []

def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    raise RuntimeError("hostile backend")

build_wheel = build_sdist = prepare_metadata_for_build_wheel
"""


def _tar(path: Path, files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), (modes or {}).get(name, 0o644)
            tf.addfile(info, io.BytesIO(data))
    return path


def hostile_sdist(where: Path, marker: Path, name: str = "evilpkg", version: str = "1.0") -> Path:
    """An sdist whose PEP 517 backend (in the tree, no build requirements) writes `marker` when run."""
    where.mkdir(parents=True, exist_ok=True)
    top = f"{name}-{version}"
    return _tar(where / f"{top}.tar.gz", {
        f"{top}/pyproject.toml": ('[build-system]\nrequires = []\nbuild-backend = "evil_backend"\n'
                                  'backend-path = ["."]\n'),
        f"{top}/evil_backend.py": BACKEND.format(marker=str(marker)),
        f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    })


def simple_index(root: Path, archive: Path, name: str = "evilpkg") -> str:
    """A PEP 503 file:// index listing `archive` (with its sha256)."""
    import hashlib

    page = root / "simple" / name
    page.mkdir(parents=True)
    files = root / "files"
    files.mkdir()
    (files / archive.name).write_bytes(archive.read_bytes())
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    (page / "index.html").write_text(f'<html><body><a href="../../files/{archive.name}#sha256={sha}">'
                                     f'{archive.name}</a></body></html>\n')
    return (root / "simple").as_uri()


def _pip_sees_only(monkeypatch, index_url: str = "", find_links: str = "") -> None:
    monkeypatch.setenv("PIP_INDEX_URL", index_url or (Path("/nonexistent-index")).as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", find_links)


@pytest.fixture()
def hostile(tmp_path):
    marker = tmp_path / "MARKER"
    links = tmp_path / "links"
    archive = hostile_sdist(links, marker)
    return {"marker": marker, "links": links, "archive": archive}


# --- the attack is real ------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_hostile_sdist_really_writes_its_marker_when_built(hostile, tmp_path):
    """Control: pip building the sdist (what the old code let happen) runs the backend on the host."""
    proc = subprocess.run(["python3", "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "--no-index",
                           "--find-links", str(hostile["links"]), "-d", str(tmp_path / "out"), "evilpkg==1.0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and hostile["marker"].exists()


# --- fetching an sdist -----------------------------------------------------------------------------
def test_fetching_an_sdist_downloads_it_without_building_it(hostile, tmp_path, monkeypatch):
    _pip_sees_only(monkeypatch, index_url=simple_index(tmp_path / "index", hostile["archive"]))
    sdist = fetch_sdist("evilpkg", "1.0", tmp_path / "cache")
    assert sdist.archive.read_bytes() == hostile["archive"].read_bytes()
    assert not hostile["marker"].exists()
    again = fetch_sdist("evilpkg", "1.0", tmp_path / "cache")  # cached: same file
    assert again.archive == sdist.archive and again.sha256 == sdist.sha256


def test_a_download_that_does_not_match_the_index_hash_is_refused(hostile, tmp_path, monkeypatch):
    index = simple_index(tmp_path / "index", hostile["archive"])
    (tmp_path / "index" / "files" / hostile["archive"].name).write_bytes(b"swapped on the mirror")
    _pip_sees_only(monkeypatch, index_url=index)
    with pytest.raises(FetchError, match="does not match the index"):
        fetch_sdist("evilpkg", "1.0", tmp_path / "cache")
    assert not (tmp_path / "cache" / "evilpkg-1.0").exists()


def test_fetching_from_a_find_links_directory_and_a_missing_version(hostile, tmp_path, monkeypatch):
    _pip_sees_only(monkeypatch, find_links=str(hostile["links"]))
    assert fetch_sdist("evilpkg", "1.0", tmp_path / "cache").archive.name == "evilpkg-1.0.tar.gz"
    with pytest.raises(FetchError, match="no sdist of evilpkg==2.0"):
        fetch_sdist("evilpkg", "2.0", tmp_path / "cache")
    assert not hostile["marker"].exists()


# --- building the environment -----------------------------------------------------------------------
@pytest.mark.slow
def test_env_build_never_builds_an_sdist_only_requirement(hostile, tmp_path, monkeypatch):
    """`evilpkg==1.0` is a plain requirement, but the only distribution is the hostile sdist: wheels only
    means the build fails with pip's reason, and the backend never runs."""
    monkeypatch.setenv("PIP_FIND_LINKS", f"{os.environ.get('PIP_FIND_LINKS', '')} {hostile['links']}".strip())
    with pytest.raises(FetchError, match="evilpkg") as info:
        ensure_env(["evilpkg==1.0"], tmp_path / "envs")
    assert "wheels only" in str(info.value)
    assert not hostile["marker"].exists()
    assert not any((tmp_path / "envs").glob("env-*"))  # nothing half-built is left looking finished


def test_ensure_env_refuses_requirements_that_were_not_screened(tmp_path):
    with pytest.raises(ValueError, match="not a plain index requirement"):
        ensure_env(["evilpkg @ file:///tmp/evilpkg-1.0.tar.gz"], tmp_path / "envs")


HOSTILE_LINES = {
    "evilpkg @ file://{archive}": "direct reference",
    "file://{archive}": "URL or a local path",
    "{archive}": "URL or a local path",
    "./evil": "URL or a local path",
    "git+https://example.invalid/evil.git#egg=evil": "URL or a local path",
    "https://example.invalid/evilpkg-1.0.tar.gz": "URL or a local path",
    "evilpkg-1.0.tar.gz": "local archive",
    "-e ./evil": "editable install",
    "--editable=git+https://example.invalid/evil.git": "editable install",
    "-r more-requirements.txt": "another requirements file",
    "-c constraints.txt": "constraints file",
    "--index-url https://example.invalid/simple": "package index",
    "-i https://example.invalid/simple": "package index",
    "--extra-index-url https://example.invalid/simple": "adds a package index",
    "--find-links {links}": "find-links",
    "-f {links}": "find-links",
    "--trusted-host example.invalid": "trusts a host",
    "--no-binary :all:": "source builds",
    "--pre": "pip option --pre",
    "evilpkg==1.0 --config-settings=x=y": "pip option --config-settings",
}


@pytest.mark.slow
def test_requirements_file_urls_paths_and_options_are_refused_and_reported(hostile, tmp_path, monkeypatch):
    lines = [line.format(archive=hostile["archive"], links=hostile["links"]) for line in HOSTILE_LINES]
    repo = tmp_path / "victim"
    repo.mkdir()
    (repo / "requirements.txt").write_text("# a comment\niniconfig  # pytest's own dependency, a wheel\n"
                                           + "\n".join(lines) + "\n")
    (repo / "more-requirements.txt").write_text(f"evilpkg @ file://{hostile['archive']}\n")
    (repo / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    monkeypatch.setenv("PIP_FIND_LINKS", f"{os.environ.get('PIP_FIND_LINKS', '')} {hostile['links']}".strip())
    prepared = prepare_repo(RepoSpec("local__victim", "path", str(repo)), tmp_path / "work")
    assert prepared.requirements == ["iniconfig"]
    assert not hostile["marker"].exists()
    refused = prepared.refused_requirements
    assert len(refused) == len(HOSTILE_LINES)
    for n, (line, why) in enumerate(zip(lines, HOSTILE_LINES.values()), start=3):
        entry = next(r for r in refused if r.startswith(f"requirements.txt:{n}: "))
        assert line.strip()[:60] in entry and why in entry, entry
    assert prepared.to_dict()["refused_requirements"] == refused  # it reaches the swe_repos row


@pytest.mark.slow
def test_pkg_info_direct_references_are_refused_and_reported(hostile, tmp_path):
    victim = _tar(tmp_path / "victim-1.0.tar.gz", {
        "victim-1.0/PKG-INFO": ("Metadata-Version: 2.1\nName: victim\nVersion: 1.0\nRequires-Dist: iniconfig\n"
                                f"Requires-Dist: evilpkg @ file://{hostile['archive']}\n"
                                f"Requires-Dist: evilpkg @ file://{hostile['archive']} ; extra == 'test'\n"
                                "Requires-Dist: docsonly ; extra == 'docs'\n"),
        "victim-1.0/victim.py": "X = 1\n"})
    prepared = prepare_repo(RepoSpec("pypi__victim", "pypi", str(victim), "1.0"), tmp_path / "work")
    assert prepared.requirements == ["iniconfig"]
    assert [r.split(": ", 1)[0] for r in prepared.refused_requirements] == ["PKG-INFO:5", "PKG-INFO:6"]
    assert all("direct reference" in r for r in prepared.refused_requirements)
    assert not hostile["marker"].exists()


def test_requirement_screen_accepts_plain_requirements():
    assert reqs.screen("Foo[bar]>=1.0,<2 ; python_version >= '3.8'")[0] == 'Foo[bar]<2,>=1.0; python_version >= "3.8"'
    assert reqs.screen("foo==1.0 --hash=sha256:" + "0" * 64)[0] == "foo==1.0"
    assert reqs.logical_lines("a \\\n  >=1  # c\n# only a comment\nurl#frag\n") == [(1, "a    >=1"), (4, "url#frag")]


# --- git metadata and links in downloaded trees ---------------------------------------------------
def test_an_sdist_carrying_git_hooks_and_config_is_refused(tmp_path):
    marker = tmp_path / "GIT-MARKER"
    hook = f"#!/bin/sh\necho hook >> {marker}\n"
    victim = _tar(tmp_path / "victim-1.0.tar.gz", {
        "victim-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: victim\nVersion: 1.0\n",
        "victim-1.0/victim.py": "X = 1\n",
        "victim-1.0/.git/config": f"[core]\n\tfsmonitor = \"echo fsmonitor >> {marker}; false\"\n"
                                  "\thooksPath = .git/hooks\n",
        "victim-1.0/.git/HEAD": "ref: refs/heads/main\n",
        "victim-1.0/.git/hooks/pre-commit": hook, "victim-1.0/.git/hooks/post-commit": hook},
        modes={"victim-1.0/.git/hooks/pre-commit": 0o755, "victim-1.0/.git/hooks/post-commit": 0o755})
    with pytest.raises(FetchError, match=r"contains \.git"):
        prepare_repo(RepoSpec("pypi__victim", "pypi", str(victim), "1.0"), tmp_path / "work")
    assert not marker.exists()
    assert not (tmp_path / "work" / "repos" / "pypi__victim-1.0").exists()


def test_a_nested_git_file_is_refused_too(tmp_path):
    victim = _tar(tmp_path / "victim-1.0.tar.gz", {
        "victim-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: victim\nVersion: 1.0\n",
        "victim-1.0/sub/.git": "gitdir: ../../elsewhere\n"})
    with pytest.raises(FetchError, match=r"sub/\.git"):
        prepare_repo(RepoSpec("pypi__victim", "pypi", str(victim), "1.0"), tmp_path / "work")


@pytest.mark.slow
def test_links_to_host_files_are_not_read(tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("secretpkg==1.0\ndef leaked():\n    return 'host data'\n")
    repo = tmp_path / "victim"
    (repo / "victim").mkdir(parents=True)
    (repo / "requirements.txt").symlink_to(secret)
    (repo / "victim" / "stolen.py").symlink_to(secret)
    (repo / "victim" / "real.py").write_text("def f():\n    return 1\n")
    prepared = prepare_repo(RepoSpec("local__victim", "path", str(repo)), tmp_path / "work")
    assert prepared.requirements == [] and "secretpkg" not in " ".join(prepared.refused_requirements)
    assert prepared.refused_requirements == ["requirements.txt:0: : refused (not a regular file (a link or a "
                                             "special file); not read)"]
    assert [p.name for p in source_files(prepared.repo_dir)] == ["real.py"]


# --- archives -------------------------------------------------------------------------------------
@pytest.mark.parametrize("member", [
    {"name": "../escape.txt"},
    {"name": "pkg/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"},
    {"name": "pkg/link", "type": tarfile.SYMTYPE, "linkname": "../../outside"},
])
def test_archive_members_that_leave_the_tree_are_refused(tmp_path, member):
    archive = tmp_path / "bad-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo(member["name"])
        info.type = member.get("type", tarfile.REGTYPE)
        info.linkname = member.get("linkname", "")
        tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(FetchError):
        unpack_sdist(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()


def test_an_absolute_member_lands_inside_the_tree(tmp_path):
    archive = _tar(tmp_path / "abs-1.0.tar.gz", {"/tmp/hrm-abs-member-test.txt": "x"})
    Path("/tmp/hrm-abs-member-test.txt").unlink(missing_ok=True)
    root = unpack_sdist(archive, tmp_path / "out")
    assert (root / "hrm-abs-member-test.txt").exists() and not Path("/tmp/hrm-abs-member-test.txt").exists()


def test_pkg_info_is_parsed_not_run_and_a_linked_pkg_info_is_ignored(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: a\nVersion: 1\n"
                                             "Requires-Dist: x>=1 ;\n  extra == 'test'\n\nRequires-Dist: body\n")
    meta = sdist_metadata(tmp_path / "a")
    assert meta["name"] == "a" and meta["requires_dist_lines"] == [(4, "x>=1 ; extra == 'test'")]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "PKG-INFO").symlink_to(tmp_path / "a" / "PKG-INFO")
    assert sdist_metadata(tmp_path / "b")["requires_dist"] == []


def test_git_command_transports_never_run_even_when_the_config_allows_them(tmp_path, monkeypatch):
    from resources.fetchers import git_clone

    marker = tmp_path / "EXT-MARKER"
    allow_ext = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "protocol.ext.allow", "GIT_CONFIG_VALUE_0": "always"}
    for k, v in allow_ext.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(FetchError, match="not allowed"):
        git_clone(f"ext::sh -c touch% {marker}", tmp_path / "clone")
    assert not marker.exists()
