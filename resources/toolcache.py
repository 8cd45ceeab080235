"""Prebuilt toolchain caches that every jail reads and none can change.

Go keeps no compiled standard library in its GOROOT: a jail with an empty build cache compiles `fmt`,
`runtime` and their dependencies before its first line runs (about 5 s on the development machine).
`build()` compiles the whole standard library, `testing` and a test binary's dependencies once, in a jail
of its own from trusted inputs only (the toolchain and the warm-up code below, never a program of a job),
then seals the result root-owned: files 0644, folders 1777, all under a root-only (0700) folder.

Every later jail sees the cache at its GOCACHE (/opt/hrm-cache/go) through an overlay mount that the host
makes for it: the sealed folder is the lower layer, a fresh empty folder of that jail's staging dir the upper
one. New entries (the job's own packages) land in the jail's upper layer and vanish with it; an entry of
the lower layer can be read but not written (root-owned 0644), nor removed or renamed (the sticky
folders), so no job can change what a later job compiles against. docs/sandbox.md says why an overlay
and not a copy or a read-only bind (Go refuses to build with a read-only cache).

Go keys cache entries by the compiler's own build ID and every input, so a cache made by another Go
release is simply never hit; the folder name keys on the release and the warm-up only so that setup
builds a new one when either changes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from resources.toolchains import TOOLCHAIN_DIR, toolchain

CACHE_ROOT = TOOLCHAIN_DIR / "caches"
# The jails' GOCACHE where the cache is mounted (otherwise the toolchain's /tmp/gocache, empty): outside
# /tmp, which long-lived jails (the LCB runner) empty between programs and expect to hold HOME alone.
GO_MOUNT = "/opt/hrm-cache/go"
_LOG = logging.getLogger("hrm.toolcache")
# `go build std` compiles every standard-library package; the test compiles a test binary's own
# dependencies (testing/internal/testdeps and the like) and runs vet's checks on them, as `go test` does.
_GO_WARM_FILES = {
    "go.mod": "module warmup\n\ngo 1.21\n",
    "warm.go": "package warm\n\nimport \"fmt\"\n\nfunc Hello() string { return fmt.Sprint(\"hello\") }\n",
    "warm_test.go": ("package warm\n\nimport \"testing\"\n\n"
                     "func TestHello(t *testing.T) {\n\tif Hello() != \"hello\" {\n\t\tt.Fatal(Hello())\n\t}\n}\n"),
}
_GO_WARM_SCRIPT = ("GOCACHE=/cache go build std && GOCACHE=/cache go test -count=1 ./... && "
                   "GOCACHE=/cache go test -json -count=1 ./... > /dev/null")


def _go_root() -> Path | None:
    tc = toolchain("go")
    return next((Path(src) for src, dest in tc.binds if dest == "/opt/go"), None) if tc.available else None


def _go_key() -> str | None:
    goroot = _go_root()
    if goroot is None:
        return None
    version = (goroot / "VERSION").read_text() if (goroot / "VERSION").exists() else ""
    env = sorted(toolchain("go").env.items())
    return hashlib.sha256(repr((version, env, _GO_WARM_SCRIPT, sorted(_GO_WARM_FILES.items())))
                          .encode()).hexdigest()[:16]


@functools.cache
def go_cache() -> Path | None:
    """The sealed Go build cache of this toolchain, or None when it is not built (or not root's)."""
    key = _go_key()
    if key is None:
        return None
    target = CACHE_ROOT / f"go-{key}"
    try:
        st, root = target.stat(), CACHE_ROOT.stat()
    except OSError:
        return None
    sealed = st.st_uid == 0 and (st.st_mode & 0o7777) == 0o1777
    hidden = root.st_uid == 0 and (root.st_mode & 0o077) == 0  # its 1777 folders are reachable by root only
    return target if sealed and hidden else None


def build(sandbox=None, log=print) -> dict[str, str]:
    """Build the caches that are missing (root only): what each came to, by language."""
    if os.geteuid() != 0:
        return {"go": "skipped: the caches are sealed root-owned, so only root builds them"}
    key = _go_key()
    if key is None:
        return {"go": "skipped: no Go toolchain"}
    target = CACHE_ROOT / f"go-{key}"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    os.chown(CACHE_ROOT, 0, 0)
    CACHE_ROOT.chmod(0o700)  # the sealed folders are 1777 inside: nobody but root may reach them
    go_cache.cache_clear()
    if go_cache() is not None:
        return {"go": f"present: {target}"}
    from resources.sandbox import SandboxJob, default_sandbox

    sandbox = sandbox or default_sandbox()
    staging = Path(tempfile.mkdtemp(prefix=".go-", dir=CACHE_ROOT))
    try:
        staging.chmod(0o777)  # written by the building jail's unprivileged uid
        log("[toolcache] building the Go standard-library cache in a jail (once; about a minute)")
        result = sandbox.run_job(SandboxJob(command=["sh", "-c", _GO_WARM_SCRIPT], files=_GO_WARM_FILES,
                                            rw_binds=[(str(staging), "/cache")], timeout_s=1800,
                                            memory_mb=max(sandbox.memory_mb, 4096)))
        if not result.ok:
            return {"go": f"failed ({result.status}): {(result.stdout + result.stderr)[-1000:]}"}
        _seal(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        go_cache.cache_clear()
    return {"go": f"built in {result.wall_s:.0f} s: {target}"}


def _seal(root: Path) -> None:
    """Root-owned; files 0644, folders 1777 (new entries may be added through a jail's overlay, none of
    root's removed or renamed); symlinks are not expected and are removed."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                os.unlink(path)
                continue
            os.lchown(path, 0, 0)
            os.chmod(path, 0o644)
        os.lchown(dirpath, 0, 0)
        os.chmod(dirpath, 0o1777)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for language, what in build(log=lambda m: print(m, file=sys.stderr)).items():
        print(f"[toolcache] {language}: {what}", file=sys.stderr)
