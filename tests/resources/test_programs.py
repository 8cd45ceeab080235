"""resources/programs.py: a single-file program of each language compiles and runs in the real jail, from its
source alone; the source never becomes part of the command, and quoted arguments stay arguments."""

import shlex
import subprocess

import pytest

from resources import programs
from resources.programs import shell_quote, single_file_job, source_name
from resources.toolchains import LANGUAGES, toolchain

HELLO = {
    "python": 'import sys\nprint("hello", sum(map(int, sys.argv[1:] or ["42"])))\n',
    "javascript": 'console.log("hello", 40 + 2);\n',
    "cpp": '#include <iostream>\nint main() { std::cout << "hello " << 40 + 2 << std::endl; }\n',
    "rust": 'fn main() { println!("hello {}", 40 + 2); }\n',
    "go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello", 40+2) }\n',
    "java": 'public class Greeter { public static void main(String[] a) { System.out.println("hello " + (40 + 2)); } }\n',
    "shell": 'echo "hello $((40 + 2))"\n',
}


def test_each_language_gets_its_file_name_and_a_fixed_command():
    for language in LANGUAGES:
        if not toolchain(language).available:
            continue
        files, command = single_file_job(language, HELLO[language])
        assert files == {source_name(language): HELLO[language]}
        assert command[:2] == ["sh", "-c"] and HELLO[language] not in command[2]
    assert source_name("java") == "Main.java" and source_name("cpp") == "main.cpp"


def test_the_source_is_a_file_not_part_of_the_command():
    hostile = '"; touch /tmp/x; echo "\n$(touch /tmp/y)\n`touch /tmp/z`\n'
    files, command = single_file_job("python", hostile)
    assert files == {"main.py": hostile} and command == ["sh", "-c", "python3 main.py"]


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="unknown language 'cobol'"):
        single_file_job("cobol", "DISPLAY 'HELLO'.")


def test_a_language_without_its_toolchain_is_refused_with_the_reason(monkeypatch, tmp_path):
    toolchain.cache_clear()
    try:
        with monkeypatch.context() as m:
            m.setenv("PATH", str(tmp_path))
            with pytest.raises(RuntimeError, match="rust toolchain unavailable: rustc not found on PATH"):
                single_file_job("rust", HELLO["rust"])
    finally:
        toolchain.cache_clear()


def test_shell_quote_keeps_each_argument_whole(tmp_path):
    marker = tmp_path / "MARKER"
    argv = ["printf", "%s\\n", f"$(touch {marker})", f"; touch {marker}", "`id`", "it's", "", "a b"]
    quoted = shell_quote(argv)
    assert shlex.split(quoted) == argv
    out = subprocess.run(["sh", "-c", quoted], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:-1] == argv[2:] and not marker.exists()


def test_every_language_has_a_recipe_and_a_source_name():
    assert set(programs._RECIPES) == set(programs._SOURCE_NAMES) == set(LANGUAGES)


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
def test_hello_world_compiles_and_runs_in_the_jail(sandbox, language):
    tc = toolchain(language)
    if not tc.available:
        pytest.skip(tc.reason)
    files, command = single_file_job(language, HELLO[language])
    result = sandbox.run(command, files=files, timeout_s=120)
    assert (result.status, result.stdout) == ("ok", "hello 42\n"), result.stderr[-2000:]


@pytest.mark.slow
def test_a_program_that_does_not_compile_fails_in_the_jail(sandbox):
    files, command = single_file_job("cpp", "int main() { return }\n")
    result = sandbox.run(command, files=files, timeout_s=120)
    assert result.status == "failed" and "error" in result.stderr and result.stdout == ""
