"""Verified multi-step CLI workflows (git, pip, npm, cargo, mvn, fs, make, cmake), with error-recovery variants.

A workflow is a task, starting files, a sequence of commands (each with its tool, arguments,
expected effect, whether it is expected to fail, and which failed step it recovers from) and a
final-state check. All of it runs as one script in the Sandbox; a workflow is kept only if every
step succeeded or failed as expected and the check passes. Names and values vary with the seed.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
from dataclasses import dataclass, field

from datagen.swe.trajectories import GIT_ENV
from resources.sandbox import Sandbox, SandboxJob

_STEP_END = re.compile(r"^@@HRM_STEP_END (\d+) (\d+)$", re.M)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class ToolStep:
    command: str
    effect: str
    expect: str = "ok"  # ok | fail
    recovers: int = -1  # index of the failed step this one (with those after it) repairs

    @property
    def tool(self) -> str:
        words = shlex.split(self.command.split("\n")[0], posix=True) if self.command.strip() else [""]
        head = [w for w in words if "=" not in w.split("/")[0]] or words
        return head[0].split("/")[-1]


@dataclass
class Workflow:
    workflow_id: str
    category: str  # git | pip | npm | cargo | fs | make | cmake
    variant: str  # normal | error_recovery
    language: str  # TrainingExample language of the artefacts
    task: str
    steps: list[ToolStep]
    check: str
    files: dict[str, str] = field(default_factory=dict)
    ro_binds: list[tuple[str, str]] = field(default_factory=list)  # trusted host dirs the tools need


# --- the workflows ------------------------------------------------------------------------
def _names(rng: random.Random) -> dict:
    words = ["alpha", "bravo", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "juniper", "kepler"]
    a, b, c = rng.sample(words, 3)
    return {"a": a, "b": b, "c": c, "n": rng.randint(2, 9), "m": rng.randint(10, 99)}


def git_feature_branch(rng):
    v = _names(rng)
    return Workflow("git_feature_branch", "git", "normal", "none",
                    f"Start a git repository, add {v['a']}.txt on main, develop {v['b']}.txt on branch "
                    f"feature/{v['b']}, and merge it back into main.",
                    [ToolStep("git init -q -b main", "an empty repository on branch main"),
                     ToolStep(f"echo {v['a']} > {v['a']}.txt && git add {v['a']}.txt", f"{v['a']}.txt staged"),
                     ToolStep(f"git commit -q -m 'add {v['a']}'", "first commit on main"),
                     ToolStep(f"git checkout -q -b feature/{v['b']}", f"branch feature/{v['b']} checked out"),
                     ToolStep(f"echo {v['b']} > {v['b']}.txt && git add -A && git commit -q -m 'add {v['b']}'",
                              "a commit on the feature branch"),
                     ToolStep("git checkout -q main", "back on main"),
                     ToolStep(f"git merge -q --no-ff -m 'merge {v['b']}' feature/{v['b']}", "feature merged into main"),
                     ToolStep("git log --oneline --graph", "history shows the merge")],
                    f"test \"$(git rev-parse --abbrev-ref HEAD)\" = main && test -f {v['b']}.txt && "
                    "test \"$(git log -1 --format=%P | wc -w)\" = 2")


def git_merge_conflict(rng):
    v = _names(rng)
    return Workflow("git_merge_conflict", "git", "error_recovery", "python",
                    f"Two branches change the same line of config.py (LIMIT = {v['n']} vs LIMIT = {v['m']}). Merge "
                    f"branch {v['b']} into main, resolve the conflict keeping {v['m']}, and finish the merge.",
                    [ToolStep("git init -q -b main && printf 'NAME = \"svc\"\\nLIMIT = 1\\n' > config.py && "
                              "git add config.py && git commit -q -m base", "base commit with config.py"),
                     ToolStep(f"git checkout -q -b {v['b']} && sed -i 's/LIMIT = 1/LIMIT = {v['m']}/' config.py && "
                              f"git commit -qam 'raise limit'", f"branch {v['b']} sets LIMIT = {v['m']}"),
                     ToolStep(f"git checkout -q main && sed -i 's/LIMIT = 1/LIMIT = {v['n']}/' config.py && "
                              f"git commit -qam 'tune limit'", f"main sets LIMIT = {v['n']}"),
                     ToolStep(f"git merge {v['b']}", "merge stops with a conflict in config.py", expect="fail"),
                     ToolStep("git diff --name-only --diff-filter=U", "lists config.py as unmerged", recovers=3),
                     ToolStep("grep -n -A4 '<<<<<<<' config.py", "shows both sides of the conflict", recovers=3),
                     ToolStep(f"printf 'NAME = \"svc\"\\nLIMIT = {v['m']}\\n' > config.py && git add config.py",
                              "conflict resolved and marked", recovers=3),
                     ToolStep("git commit -q --no-edit", "merge commit created", recovers=3)],
                    f"! grep -q '<<<<<<<' config.py && grep -qx 'LIMIT = {v['m']}' config.py && "
                    "test \"$(git log -1 --format=%P | wc -w)\" = 2 && test -z \"$(git status --porcelain)\"")


def git_empty_commit_recovery(rng):
    v = _names(rng)
    return Workflow("git_nothing_staged", "git", "error_recovery", "none",
                    f"Commit the new file {v['a']}.md in an existing repository.",
                    [ToolStep("git init -q -b main && git commit -q --allow-empty -m root", "repository with a root commit"),
                     ToolStep(f"echo '# {v['a']}' > {v['a']}.md", f"{v['a']}.md written"),
                     ToolStep(f"git commit -q -m 'add {v['a']}'", "fails: nothing is staged", expect="fail"),
                     ToolStep("git status --short", f"shows ?? {v['a']}.md (untracked)", recovers=2),
                     ToolStep(f"git add {v['a']}.md && git commit -q -m 'add {v['a']}'", "file committed", recovers=2)],
                    f"git ls-files --error-unmatch {v['a']}.md && test -z \"$(git status --porcelain)\"")


_PYPROJECT = ("[project]\nname = \"{pkg}\"\nversion = \"0.{n}.0\"\n[build-system]\nrequires = [\"setuptools\"]\n"
              "build-backend = \"setuptools.build_meta\"\n")


def pip_local_wheel(rng, recovery: bool):
    v = _names(rng)
    pkg = f"{v['a']}_tools"
    files = {f"pkg/{pkg}/__init__.py": f"def answer():\n    return {v['m']}\n",
             "pkg/pyproject.toml": _PYPROJECT.format(pkg=pkg, n=v["n"])}
    steps = [ToolStep("python3 -m pip wheel -q --no-deps --no-build-isolation --no-index -w wheels ./pkg",
                      f"wheels/{pkg}-0.{v['n']}.0-py3-none-any.whl built")]
    if recovery:
        steps += [ToolStep(f"python3 -m pip install -q --no-index --target /tmp/site {pkg}",
                           "fails: no index and no source given", expect="fail"),
                  ToolStep("ls wheels", "the wheel is in ./wheels", recovers=1),
                  ToolStep(f"python3 -m pip install -q --no-index --find-links wheels --target /tmp/site {pkg}",
                           "installed from the local wheel", recovers=1)]
    else:
        steps += [ToolStep(f"python3 -m pip install -q --no-index --find-links wheels --target /tmp/site {pkg}",
                           "installed into /tmp/site")]
    steps.append(ToolStep(f"PYTHONPATH=/tmp/site python3 -c 'import {pkg}; print({pkg}.answer())'", f"prints {v['m']}"))
    return Workflow(f"pip_local_wheel{'_recovery' if recovery else ''}", "pip",
                    "error_recovery" if recovery else "normal", "python",
                    f"Build the local package {pkg} into a wheel and install it offline into /tmp/site.",
                    steps, f"PYTHONPATH=/tmp/site python3 -c 'import {pkg}; assert {pkg}.answer() == {v['m']}'", files)


def npm_local_dependency(rng, recovery: bool):
    v = _names(rng)
    lib = f"{v['a']}-lib"
    files = {f"{lib}/package.json": json.dumps({"name": lib, "version": "1.0.0", "main": "index.js"}),
             f"{lib}/index.js": f"module.exports = (x) => x * {v['n']};\n",
             "app/test.js": f"const f = require('{lib}');\nif (f(3) !== {3 * v['n']}) process.exit(1);\n"
                            "console.log('ok');\n"}
    steps = [ToolStep("cd app && npm init -y >/dev/null", "app/package.json created"),
             ToolStep(f"npm install --offline --no-audit --no-fund ../{lib}", f"{lib} linked into node_modules")]
    if recovery:
        steps += [ToolStep("npm test", "fails: package.json has the placeholder test script", expect="fail"),
                  ToolStep("npm pkg get scripts.test", "shows the failing placeholder", recovers=2),
                  ToolStep("npm pkg set scripts.test='node test.js'", "test script points at test.js", recovers=2)]
    else:
        steps.append(ToolStep("npm pkg set scripts.test='node test.js'", "test script set"))
    steps.append(ToolStep("npm test --silent", "prints ok"))
    return Workflow(f"npm_local_dependency{'_recovery' if recovery else ''}", "npm",
                    "error_recovery" if recovery else "normal", "javascript",
                    f"Create an npm app that depends on the local package {lib} (offline) and passes `npm test`.",
                    steps, "cd app && npm test --silent && test -e node_modules/" + lib, files)


def cargo_offline_build(rng, recovery: bool):
    v = _names(rng)
    literal = f'"{v["m"]}"' if recovery else str(v["m"])
    main = ("fn main() {\n    let mut buf = itoa::Buffer::new();\n"
            f"    let n: u32 = {literal};\n"
            "    println!(\"{}\", buf.format(n));\n}\n")
    steps = [ToolStep(f"cargo new -q --vcs none {v['a']}", f"a binary crate {v['a']}"),
             ToolStep(f"cd {v['a']} && cargo add -q --offline itoa@1", "itoa added from the offline registry"),
             ToolStep(f"cat > src/main.rs <<'EOF'\n{main}EOF", "main.rs formats a number with itoa")]
    if recovery:
        steps += [ToolStep("cargo build -q --offline", "fails: a string is assigned to a u32", expect="fail"),
                  ToolStep("cargo build -q --offline 2>&1 | grep -m1 -A3 'error\\['", "shows the mismatched types error",
                           recovers=3),
                  ToolStep(f"sed -i 's/\"{v['m']}\"/{v['m']}/' src/main.rs", "the literal is a number again", recovers=3)]
    steps.append(ToolStep("cargo run -q --offline", f"prints {v['m']}"))
    return Workflow(f"cargo_offline_build{'_recovery' if recovery else ''}", "cargo",
                    "error_recovery" if recovery else "normal", "rust",
                    f"Create the Rust binary {v['a']} using the itoa crate from the offline registry and run it.",
                    steps, f"cd {v['a']} && test \"$(cargo run -q --offline)\" = {v['m']}")


def fs_reorganise(rng, recovery: bool):
    v = _names(rng)
    files = {f"inbox/{v['a']}.log": "x\n" * v["n"], f"inbox/{v['b']}.log": "y\n", f"inbox/{v['c']}.txt": "notes\n"}
    steps = []
    if recovery:
        steps += [ToolStep("mv inbox/*.log archive/logs/", "fails: archive/logs does not exist", expect="fail"),
                  ToolStep("ls -la archive 2>&1 || true", "confirms the directory is missing", recovers=0),
                  ToolStep("mkdir -p archive/logs", "target directory created", recovers=0)]
    else:
        steps.append(ToolStep("mkdir -p archive/logs", "target directory created"))
    steps += [ToolStep("mv inbox/*.log archive/logs/", "logs moved"),
              ToolStep("tar czf archive/logs.tgz -C archive logs", "logs packed into archive/logs.tgz"),
              ToolStep("find archive -type f | sort", "lists the archived files"),
              ToolStep("chmod 600 archive/logs.tgz", "archive readable by its owner only")]
    return Workflow(f"fs_reorganise{'_recovery' if recovery else ''}", "fs", "error_recovery" if recovery else "normal",
                    "none", f"Move the .log files from inbox/ into archive/logs/, pack them into archive/logs.tgz "
                            "readable only by the owner, and leave the .txt file alone.",
                    steps, f"test -f archive/logs/{v['a']}.log && test ! -e inbox/{v['b']}.log && "
                           f"test -f inbox/{v['c']}.txt && tar tzf archive/logs.tgz | grep -q {v['a']}.log && "
                           "test \"$(stat -c %a archive/logs.tgz)\" = 600", files)


def make_build(rng, recovery: bool):
    v = _names(rng)
    recipe_indent = "    " if recovery else "\t"
    files = {"Makefile": f"CC ?= gcc\n{v['a']}: main.o util.o\n{recipe_indent}$(CC) -o $@ $^\n"
                         f"%.o: %.c\n\t$(CC) -c -o $@ $<\ntest: {v['a']}\n\t./{v['a']} | grep -qx {v['m']}\n"
                         ".PHONY: test\n",
             "main.c": "#include <stdio.h>\nint value(void);\nint main(void) { printf(\"%d\\n\", value()); return 0; }\n",
             "util.c": f"int value(void) {{ return {v['m']}; }}\n"}
    steps = []
    if recovery:
        steps += [ToolStep("make", "fails: the recipe is indented with spaces (missing separator)", expect="fail"),
                  ToolStep("cat -A Makefile | sed -n 3p", "shows spaces where make needs a tab", recovers=0),
                  ToolStep("sed -i 's/^    /\\t/' Makefile", "recipe indented with a tab", recovers=0)]
    steps += [ToolStep("make", f"builds {v['a']} from main.o and util.o"),
              ToolStep("make test", f"the program prints {v['m']}"),
              ToolStep(f"make -q {v['a']}", "nothing left to rebuild")]
    return Workflow(f"make_build{'_recovery' if recovery else ''}", "make", "error_recovery" if recovery else "normal",
                    "cpp", f"Build the C program {v['a']} with make and run its test target.", steps,
                    f"make -q {v['a']} && ./{v['a']} | grep -qx {v['m']}", files)


def cmake_build(rng, recovery: bool):
    v = _names(rng)
    sources = "main.cpp lib.cpp" if not recovery else "main.cpp lib.cpp extra.cpp"
    files = {"CMakeLists.txt": f"cmake_minimum_required(VERSION 3.10)\nproject({v['a']} CXX)\n"
                               f"add_executable({v['a']} {sources})\nenable_testing()\n"
                               f"add_test(NAME prints COMMAND {v['a']})\n"
                               f"set_tests_properties(prints PROPERTIES PASS_REGULAR_EXPRESSION \"^{v['m']}\")\n",
             "main.cpp": "#include <iostream>\nint value();\nint main() { std::cout << value() << std::endl; }\n",
             "lib.cpp": f"int value() {{ return {v['m']}; }}\n"}
    steps = []
    if recovery:
        steps += [ToolStep("cmake -S . -B build", "fails: extra.cpp is listed but does not exist", expect="fail"),
                  ToolStep("ls *.cpp", "only main.cpp and lib.cpp exist", recovers=0),
                  ToolStep("sed -i 's/ extra.cpp//' CMakeLists.txt && rm -rf build", "the stray source is dropped",
                           recovers=0)]
    steps += [ToolStep("cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null", "build tree configured"),
              ToolStep("cmake --build build -j2", f"{v['a']} compiled"),
              ToolStep("cd build && ctest --output-on-failure", "the test passes")]
    return Workflow(f"cmake_build{'_recovery' if recovery else ''}", "cmake", "error_recovery" if recovery else "normal",
                    "cpp", f"Configure, build and test the CMake project {v['a']}.", steps,
                    f"test -x build/{v['a']} && build/{v['a']} | grep -qx {v['m']}", files)


# Debian's offline Maven repository (apt-get install libmaven-compiler-plugin-java libmaven-resources-plugin-java
# libmaven-jar-plugin-java libsurefire-java); the pom pins the plugin versions Debian ships.
MAVEN_REPO = "/usr/share/maven-repo"
MAVEN_PLUGINS = (("maven-compiler-plugin", "3.10.1"), ("maven-resources-plugin", "3.3.0"),
                 ("maven-jar-plugin", "3.3.0"), ("maven-surefire-plugin", "2.22.3"))


def maven_unavailable() -> str | None:
    import shutil

    if not shutil.which("mvn"):
        return "mvn not installed"
    missing = [f"{a}:{v}" for a, v in MAVEN_PLUGINS
               if not os.path.exists(f"{MAVEN_REPO}/org/apache/maven/plugins/{a}/{v}/{a}-{v}.jar")]
    return f"offline Maven plugins missing from {MAVEN_REPO}: {', '.join(missing)}" if missing else None


def maven_package(rng, recovery: bool):
    v = _names(rng)
    cls = v["a"].capitalize()
    plugins = "".join(f"<plugin><groupId>org.apache.maven.plugins</groupId><artifactId>{a}</artifactId>"
                      f"<version>{ver}</version></plugin>" for a, ver in MAVEN_PLUGINS)
    pom = ("<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><modelVersion>4.0.0</modelVersion>\n"
           f"<groupId>org.hrm</groupId><artifactId>{v['a']}</artifactId><version>1.0</version>\n"
           "<properties><maven.compiler.release>17</maven.compiler.release>"
           "<project.build.sourceEncoding>UTF-8</project.build.sourceEncoding></properties>\n"
           f"<build><plugins>{plugins}</plugins></build></project>\n")
    value = f'"{v["m"]}"' if recovery else str(v["m"])
    java = (f"package org.hrm;\npublic class {cls} {{\n    public static void main(String[] args) {{\n"
            f"        int n = {value};\n        System.out.println(n * 2);\n    }}\n}}\n")
    files = {"pom.xml": pom, f"src/main/java/org/hrm/{cls}.java": java}
    mvn = f"mvn -o -q -B -Dstyle.color=never -Dmaven.repo.local={MAVEN_REPO} package"
    steps = []
    if recovery:
        steps += [ToolStep(mvn, "fails: a String is assigned to an int", expect="fail"),
                  ToolStep(f"{mvn} 2>&1 | grep -m1 'incompatible types'", "shows the compiler error", recovers=0),
                  ToolStep(f"sed -i 's/\"{v['m']}\"/{v['m']}/' src/main/java/org/hrm/{cls}.java",
                           "the literal is an int again", recovers=0)]
    steps += [ToolStep(mvn, f"target/{v['a']}-1.0.jar built offline"),
              ToolStep(f"java -cp target/{v['a']}-1.0.jar org.hrm.{cls}", f"prints {2 * v['m']}")]
    return Workflow(f"maven_package{'_recovery' if recovery else ''}", "mvn", "error_recovery" if recovery else "normal",
                    "java", f"Build the Maven project {v['a']} offline and run its main class.", steps,
                    f"test \"$(java -cp target/{v['a']}-1.0.jar org.hrm.{cls})\" = {2 * v['m']}", files,
                    [("/etc/maven", "/etc/maven")])


# workflow name -> check returning why it cannot run on this machine (None: it can)
REQUIREMENTS = {"maven_package": maven_unavailable, "maven_package_recovery": maven_unavailable}

WORKFLOW_BUILDERS = {
    "git_feature_branch": git_feature_branch,
    "git_merge_conflict": git_merge_conflict,
    "git_nothing_staged": git_empty_commit_recovery,
    "pip_local_wheel": lambda r: pip_local_wheel(r, False),
    "pip_local_wheel_recovery": lambda r: pip_local_wheel(r, True),
    "npm_local_dependency": lambda r: npm_local_dependency(r, False),
    "npm_local_dependency_recovery": lambda r: npm_local_dependency(r, True),
    "cargo_offline_build": lambda r: cargo_offline_build(r, False),
    "cargo_offline_build_recovery": lambda r: cargo_offline_build(r, True),
    "fs_reorganise": lambda r: fs_reorganise(r, False),
    "fs_reorganise_recovery": lambda r: fs_reorganise(r, True),
    "make_build": lambda r: make_build(r, False),
    "make_build_recovery": lambda r: make_build(r, True),
    "cmake_build": lambda r: cmake_build(r, False),
    "cmake_build_recovery": lambda r: cmake_build(r, True),
    "maven_package": lambda r: maven_package(r, False),
    "maven_package_recovery": lambda r: maven_package(r, True),
}


def unavailable_workflows() -> dict[str, str]:
    """Workflows whose tools are missing here, with the reason (they are skipped, not failed)."""
    return {name: why for name, check in REQUIREMENTS.items() if (why := check())}


def workflows(seed: int = 0, variants: int = 1, only: list[str] | None = None) -> list[Workflow]:
    out, skip = [], unavailable_workflows()
    for name, build in WORKFLOW_BUILDERS.items():
        if (only and name not in only) or name in skip:
            continue
        for k in range(variants):
            wf = build(random.Random(f"{seed}:{name}:{k}"))
            wf.workflow_id = f"{wf.workflow_id}.s{seed}v{k}"
            out.append(wf)
    return out


# --- execution ----------------------------------------------------------------------------
def script(wf: Workflow) -> str:
    parts = ["cd /work"]
    for i, step in enumerate(wf.steps):
        # the working directory carries over, as in a terminal; output may lack a final newline
        parts.append(f"echo '@@HRM_STEP_BEGIN {i}'\n{{ {step.command}\n}} < /dev/null 2>&1\n"
                     f"__hrm_rc=$?; printf '\\n@@HRM_STEP_END {i} %s\\n' \"$__hrm_rc\"")
    parts.append(f"echo '@@HRM_CHECK_BEGIN'\ncd /work\n( {wf.check}\n) > /dev/null 2>&1\necho \"@@HRM_CHECK_END $?\"")
    return "\n".join(parts) + "\n"


def run_workflow(sandbox: Sandbox, wf: Workflow, timeout_s: float = 240) -> dict:
    """Execute in the jail; the row with each step's exit code and output, `kept` and the reason if not."""
    job = SandboxJob(command=["bash", "-s"], files=dict(wf.files), stdin=script(wf).encode(), env=dict(GIT_ENV),
                     ro_binds=[b for b in wf.ro_binds if os.path.exists(b[0])], timeout_s=timeout_s)
    result = sandbox.run_job(job)
    stdout = _ANSI.sub("", result.stdout)
    outputs = re.split(r"^@@HRM_STEP_BEGIN \d+\n", stdout, flags=re.M)[1:]
    codes = {int(i): int(c) for i, c in _STEP_END.findall(stdout)}
    check = re.search(r"^@@HRM_CHECK_END (\d+)$", stdout, re.M)
    steps, problems = [], []
    for i, step in enumerate(wf.steps):
        code = codes.get(i)
        out = _STEP_END.sub("", outputs[i]).split("@@HRM_CHECK_BEGIN")[0].strip() if i < len(outputs) else ""
        if code is None:
            problems.append(f"step {i} did not run")
        elif (code == 0) != (step.expect == "ok"):
            problems.append(f"step {i} ({step.command.splitlines()[0][:60]}) exited {code}, expected {step.expect}")
        steps.append({"index": i, "tool": step.tool, "args": _args(step.command), "command": step.command,
                      "expected_effect": step.effect, "expect": step.expect, "recovers": step.recovers,
                      "exit_code": code, "output": out[-2000:]})
    check_passed = bool(check) and check.group(1) == "0"
    if result.status not in ("ok", "failed"):
        problems.append(f"sandbox status {result.status}")
    if not check_passed:
        problems.append("final-state check failed")
    return {"workflow_id": wf.workflow_id, "category": wf.category, "variant": wf.variant, "language": wf.language,
            "task": wf.task, "files": json.dumps(wf.files), "steps": json.dumps(steps), "n_steps": len(steps),
            "check": wf.check, "check_passed": check_passed, "kept": not problems, "reason": "; ".join(problems),
            "wall_s": result.wall_s}


def build_tool_use_examples(sandbox: Sandbox, seed: int = 0, variants: int = 1,
                            only: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    """(kept rows, rejected rows with their reason)."""
    rows = sandbox.map(lambda wf: run_workflow(sandbox, wf), workflows(seed, variants, only))
    return [r for r in rows if r["kept"]], [r for r in rows if not r["kept"]]


def _args(command: str) -> list[str]:
    try:
        return shlex.split(command.split("\n")[0])[1:]
    except ValueError:
        return [command]
