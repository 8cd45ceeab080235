"""resources/pypi.py: sdists found on pip's indexes (a file:// simple index, a find-links folder and an http
index on 127.0.0.1, all made here), downloaded, hash-checked and unpacked without leaving their folder.
The attacks on building them are in tests/datagen/swe/test_repos_attacks.py."""

import functools
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from resources import pypi
from resources.fetchers import FetchError
from resources.pypi import fetch_sdist, find_sdist, pip_settings, sdist_metadata, unpack_sdist


def _targz(path: Path, files: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _sdist(where: Path, name: str, version: str) -> Path:
    top = f"{name}-{version}"
    return _targz(where / f"{top}.tar.gz", {f"{top}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\n"
                                                               f"Version: {version}\n",
                                            f"{top}/{name.lower()}.py": "X = 1\n"})


def _index(root: Path, project: str, archives: list[Path], sha: bool = True, extra_links: str = "") -> Path:
    """A PEP 503 simple index under root/simple listing `archives` (copied to root/files)."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    links = []
    for archive in archives:
        (files / archive.name).write_bytes(archive.read_bytes())
        digest = f"#sha256={hashlib.sha256(archive.read_bytes()).hexdigest()}" if sha else ""
        links.append(f'<a href="../../files/{archive.name}{digest}">{archive.name}</a>')
    page = root / "simple" / project
    page.mkdir(parents=True)
    (page / "index.html").write_text("<html><body>" + "".join(links) + extra_links + "</body></html>\n")
    return root / "simple"


def _pip_sees(monkeypatch, index_url: str = "", find_links: str = "", **more: str) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", index_url or Path("/nonexistent-index").as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", find_links)
    for key, value in more.items():
        monkeypatch.setenv(key, value)


@pytest.fixture()
def http_index(tmp_path):
    """The index folder served over plain http on 127.0.0.1; yields (root folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- locating --------------------------------------------------------------------------------------------
def test_pip_settings_come_from_pips_own_configuration(monkeypatch, tmp_path):
    _pip_sees(monkeypatch, index_url="file:///somewhere/simple", find_links=str(tmp_path), PIP_NO_INDEX="1")
    settings = pip_settings()
    assert settings["index-url"] == "file:///somewhere/simple"
    assert settings["find-links"] == str(tmp_path) and settings["no-index"] == "1"


def test_the_index_entry_of_the_asked_version_is_picked_by_normalised_name(tmp_path):
    archives = [_sdist(tmp_path / "dists", "Foo.Bar_baz", v) for v in ("1.0", "1.0.1", "2.0")]
    wheel = tmp_path / "dists" / "foo_bar_baz-1.0-py3-none-any.whl"
    wheel.write_bytes(b"a wheel is never picked")
    index = _index(tmp_path / "index", "foo-bar-baz", [wheel, *archives])
    url, filename, sha = find_sdist("foo-bar-baz", "1.0.0", {"index-url": index.as_uri()})
    assert filename == "Foo.Bar_baz-1.0.tar.gz" and url.endswith("/files/Foo.Bar_baz-1.0.tar.gz")
    assert sha == hashlib.sha256(archives[0].read_bytes()).hexdigest() and "#" not in url


def test_hidden_names_and_other_projects_are_not_taken_for_the_sdist(tmp_path):
    real = _sdist(tmp_path / "dists", "pkg", "1.0")
    decoy = _sdist(tmp_path / "decoy", "pkg", "1.0")
    (tmp_path / "decoy" / ".pkg-1.0.tar.gz").write_bytes(decoy.read_bytes())
    index = _index(tmp_path / "index", "pkg", [_sdist(tmp_path / "other", "pkg-extra", "1.0")],
                   extra_links='<a href="../../files/.pkg-1.0.tar.gz">.pkg-1.0.tar.gz</a>')
    with pytest.raises(FetchError, match=r"no sdist of pkg==1.0 .*looked at .*simple/pkg/"):
        find_sdist("pkg", "1.0", {"index-url": index.as_uri()})
    found = find_sdist("pkg", "1.0", {"index-url": index.as_uri(), "find-links": str(real.parent)})
    assert found[1] == "pkg-1.0.tar.gz" and found[0] == real.resolve().as_uri() and found[2] == ""


def test_no_index_looks_only_at_find_links(tmp_path):
    archive = _sdist(tmp_path / "dists", "pkg", "1.0")
    index = _index(tmp_path / "index", "pkg", [archive])
    with pytest.raises(FetchError, match="looked at nothing"):
        find_sdist("pkg", "1.0", {"index-url": index.as_uri(), "no-index": "true"})


@pytest.mark.parametrize("index_url, why", [
    ("ftp://127.0.0.1/simple", "URL scheme 'ftp' is not fetched"),
    ("gopher://127.0.0.1/simple", "URL scheme 'gopher' is not fetched"),
    ("http://127.0.0.1:9/simple", "plain http to a host pip does not trust"),
])
def test_indexes_at_refused_urls_are_named_in_the_error(index_url, why):
    with pytest.raises(FetchError, match="unreachable: .*" + why):
        find_sdist("pkg", "1.0", {"index-url": index_url})


# --- downloading ---------------------------------------------------------------------------------------------
def test_a_local_archive_path_is_used_as_it_is(tmp_path, monkeypatch):
    archive = _sdist(tmp_path / "dists", "pkg", "1.0")
    _pip_sees(monkeypatch, PIP_NO_INDEX="1")
    sdist = fetch_sdist(str(archive), "1.0", tmp_path / "cache")
    assert sdist.archive == archive and sdist.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert not (tmp_path / "cache").exists()


def test_plain_http_needs_a_trusted_host_and_then_downloads_and_checks_the_hash(http_index, tmp_path, monkeypatch):
    root, base = http_index
    archive = _sdist(tmp_path / "dists", "pkg", "1.0")
    _index(root, "pkg", [archive])
    _pip_sees(monkeypatch, index_url=f"{base}/simple/")
    with pytest.raises(FetchError, match="plain http to a host pip does not trust"):
        fetch_sdist("pkg", "1.0", tmp_path / "cache")
    monkeypatch.setenv("PIP_TRUSTED_HOST", "127.0.0.1")
    sdist = fetch_sdist("pkg", "1.0", tmp_path / "cache")
    assert sdist.archive == tmp_path / "cache" / "pkg-1.0" / "pkg-1.0.tar.gz"
    assert sdist.archive.read_bytes() == archive.read_bytes()
    (root / "files" / archive.name).write_bytes(b"replaced on the server")
    assert fetch_sdist("pkg", "1.0", tmp_path / "cache").sha256 == sdist.sha256  # served from the cache


def test_a_hash_mismatch_over_http_leaves_nothing_cached(http_index, tmp_path, monkeypatch):
    root, base = http_index
    archive = _sdist(tmp_path / "dists", "pkg", "1.0")
    _index(root, "pkg", [archive])
    (root / "files" / archive.name).write_bytes(archive.read_bytes() + b"\0")
    _pip_sees(monkeypatch, index_url=f"{base}/simple/", PIP_TRUSTED_HOST="127.0.0.1")
    with pytest.raises(FetchError, match=r"pkg-1.0.tar.gz: sha256 [0-9a-f]{64} does not match the index's"):
        fetch_sdist("pkg", "1.0", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # neither the download nor its temporary folder


def test_a_download_over_the_size_limit_is_refused(tmp_path, monkeypatch):
    archive = _sdist(tmp_path / "dists", "pkg", "1.0")
    _pip_sees(monkeypatch, index_url=_index(tmp_path / "index", "pkg", [archive]).as_uri())
    monkeypatch.setattr(pypi, "MAX_SDIST_BYTES", archive.stat().st_size - 1)
    with pytest.raises(FetchError, match="larger than .* bytes; refused"):
        fetch_sdist("pkg", "1.0", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_index_link_with_a_refused_scheme_is_not_downloaded(tmp_path, monkeypatch):
    index = tmp_path / "index" / "simple"
    (index / "pkg").mkdir(parents=True)
    (index / "pkg" / "index.html").write_text('<a href="ftp://127.0.0.1/pkg-1.0.tar.gz">pkg-1.0.tar.gz</a>')
    _pip_sees(monkeypatch, index_url=index.as_uri())
    with pytest.raises(FetchError, match="download of ftp://127.0.0.1/pkg-1.0.tar.gz failed: URL scheme 'ftp'"):
        fetch_sdist("pkg", "1.0", tmp_path / "cache")


# --- unpacking and metadata --------------------------------------------------------------------------------
def test_an_sdist_unpacks_to_its_single_top_folder(tmp_path):
    root = unpack_sdist(_sdist(tmp_path, "pkg", "1.0"), tmp_path / "out")
    assert root == tmp_path / "out" and sorted(p.name for p in root.iterdir()) == ["PKG-INFO", "pkg.py"]
    assert sdist_metadata(root)["name"] == "pkg" and sdist_metadata(root)["version"] == "1.0"
    flat = unpack_sdist(_targz(tmp_path / "flat.tar.gz", {"a.py": "", "b.py": ""}), tmp_path / "flat")
    assert sorted(p.name for p in flat.iterdir()) == ["a.py", "b.py"]


@pytest.mark.parametrize("member", ["../escape.py", "pkg/../../escape.py", "/tmp/escape.py"])
def test_zip_members_that_leave_the_folder_are_refused(tmp_path, member):
    archive = tmp_path / "bad-1.0.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bad-1.0/PKG-INFO", "Name: bad\n")
        zf.writestr(member, "print('escaped')\n")
    with pytest.raises(FetchError, match=f"member {member!r} would be written outside"):
        unpack_sdist(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.py").exists()
    assert [p.name for p in tmp_path.iterdir()] == [archive.name]  # no temporary folder is left


@pytest.mark.parametrize("name, data", [("junk-1.0.tar.gz", b"not a tar at all\n"),
                                        ("junk-1.0.zip", b"PK\x03\x04 not really a zip"),
                                        ("junk-1.0.tar.gz", b"\x1f\x8b\x08\x00 cut gzip")])
def test_an_archive_that_is_not_one_is_named_in_the_error(tmp_path, name, data):
    archive = tmp_path / name
    archive.write_bytes(data)
    with pytest.raises(FetchError, match=f"{name}: not a readable archive"):
        unpack_sdist(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_too_many_members_are_refused_before_unpacking(tmp_path, monkeypatch):
    archive = _targz(tmp_path / "many-1.0.tar.gz", {f"many-1.0/f{i}.py": "" for i in range(5)})
    monkeypatch.setattr(pypi, "MAX_MEMBERS", 4)
    with pytest.raises(FetchError, match="5 members"):
        unpack_sdist(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_metadata_of_a_tree_without_pkg_info_is_empty_and_a_huge_one_is_refused(tmp_path, monkeypatch):
    assert sdist_metadata(tmp_path) == {"name": None, "version": None, "requires_dist": [],
                                        "requires_dist_lines": []}
    (tmp_path / "PKG-INFO").write_text("Name: big\nVersion: 1\nRequires-Dist: a\nRequires-Dist: b>=2\n"
                                       + "Summary: x\n" * 50)
    assert sdist_metadata(tmp_path)["requires_dist_lines"] == [(3, "a"), (4, "b>=2")]
    monkeypatch.setattr(pypi, "MAX_METADATA_BYTES", 100)
    with pytest.raises(FetchError, match="PKG-INFO: larger than 100 bytes; refused"):
        sdist_metadata(tmp_path)
