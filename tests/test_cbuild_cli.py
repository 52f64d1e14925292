"""`python -m edgelearn.kernels.cbuild` as firmware/README.md describes it: the build's path on
stdout, the compiler command on stderr with --verbose (also for a cached build), and one line
`cbuild: ...` with exit 2 for an unknown build."""

from edgelearn.kernels import cbuild


def test_verbose_prints_the_compiler_command_of_a_cached_build(capsys):
    path = cbuild.build("lib")                        # cached from here on
    capsys.readouterr()
    assert cbuild.main(["lib", "--verbose"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(path)
    command = err.strip().splitlines()
    assert len(command) == 1
    words = command[0].split()
    assert words[0] == cbuild.host_compiler()
    assert "el_native.c" in command[0] and words[-2:] == ["-o", str(path)]


def test_without_verbose_only_the_path(capsys):
    path = cbuild.build("lib")
    capsys.readouterr()
    assert cbuild.main(["lib"]) == 0
    out, err = capsys.readouterr()
    assert (out.strip(), err) == (str(path), "")


def test_an_unknown_build_is_one_line_and_exit_2(capsys):
    assert cbuild.main(["nonesuch"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("cbuild: unknown firmware build 'nonesuch'")
