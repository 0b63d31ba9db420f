"""Issue 11's list, one test each: what a new user typed, and what ebpm now does."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ebpm.trust.policy import user_policy_path
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.resolver.test_resolver_install import project, publish

# -- global options, --json, -o json, did you mean ----------------------------------------------

def test_global_options_anywhere_and_o_json(capsys) -> None:
    for args in (["list", "-o", "json"], ["list", "--output=json"], ["--json", "list"],
                 ["list", "-vv", "--json"], ["list", "--offline", "-ojson"]):
        r = ebpm(capsys, *args)
        assert r.code == 0 and json.loads(r.out) == [], (args, r.err)
    r = ebpm(capsys, "cache", "dir", "--json")
    assert r.code == 2 and "'ebpm cache dir' has no JSON output" in r.err


def test_did_you_mean(capsys) -> None:
    r = ebpm(capsys, "lsit")
    assert r.code == 2 and "No such command 'lsit'. Did you mean 'list'?" in r.err
    r = ebpm(capsys, "trust", "lsit")
    assert r.code == 2 and "Did you mean 'list'?" in r.err
    r = ebpm(capsys, "zzzzzz")
    assert r.code == 2 and "Did you mean" not in r.err
    # other tools' words get ebpm's (difflib offered 'logs' for ls, 'tags' for images)
    for word, ours in (("ls", "list"), ("images", "list"), ("rmi", "rm"), ("info", "inspect"),
                       ("prune", "cache prune")):
        r = ebpm(capsys, word)
        assert r.code == 2 and f"No such command '{word}'. Did you mean '{ours}'?" in r.err


def test_other_tools_words_name_real_commands() -> None:
    from ebpm.cli.app import COMMANDS, OTHER_TOOLS, cli

    for word, ours in OTHER_TOOLS.items():
        assert word not in COMMANDS, word
        first, *rest = ours.split()
        assert first in COMMANDS, ours
        if rest:
            import click

            group = cli.get_command(click.Context(cli), first)
            assert isinstance(group, click.Group) and rest[0] in group.commands, ours


# -- ebpm run's own options ---------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--duraton", "2", "x"], "No such option '--duraton'. Did you mean '--duration'?"),
    (["x", "--pid", "42"], "Package flags go after `--`: ebpm run TARGET -- --pid"),
    (["x", "extra"], "unexpected argument 'extra': package arguments go after `--`"),
    (["x", "--duration", "-1"], "-1.0 is not in the range x>0"),
    (["x", "--interval", "0"], "0.0 is not in the range x>0"),
    (["x", "--max-events", "0"], "0 is not in the range x>=1"),
    (["x", "--allow", "bogus"], "'bogus' is not one of 'tracing', 'xdp'"),
])
def test_run_refuses_what_it_does_not_take(capsys, args: list[str], message: str) -> None:
    r = ebpm(capsys, "run", *args)
    assert r.code == 2 and message in r.err, r.err


def test_run_allow_matches_the_wasm_policy() -> None:
    from ebpm.cli.run import WASM_CATEGORIES
    from ebpm.loader.wasm.policy import CATEGORIES

    assert tuple(WASM_CATEGORIES) == tuple(CATEGORIES)


def test_run_says_when_a_local_directory_shadows_a_package(capsys, tmp_path: Path,
                                                            monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opensnoop").mkdir()
    r = ebpm(capsys, "--offline", "run", "opensnoop", "--duration", "1")
    assert ("ebpm: running the local 'opensnoop' (./opensnoop); the registry package is "
            "localhost:5000/opensnoop") in r.err
    r = ebpm(capsys, "--offline", "run", "./opensnoop")
    assert "registry package is" not in r.err


# -- version, completion, man -------------------------------------------------------------------

def test_version_names_the_components(capsys) -> None:
    r = ebpm(capsys, "version")
    assert r.code == 0
    names = [line.split(":", 1)[0] for line in r.out.splitlines()]
    assert names == ["ebpm", "python", "kernel", "libbpf", "wasmtime", "clang", "bpftool"]
    doc = json.loads(ebpm(capsys, "version", "--json").out)
    assert doc["kernel"]["version"] == os.uname().release
    assert doc["libbpf"]["version"]  # Debian's libbpf1 is installed by scripts/bootstrap.sh


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(capsys, shell: str) -> None:
    r = ebpm(capsys, "completion", shell)
    assert r.code == 0 and "_EBPM_COMPLETE" in r.out


def test_completion_completes_commands() -> None:
    import subprocess
    import sys

    env = dict(os.environ, _EBPM_COMPLETE="bash_complete", COMP_WORDS="ebpm tr", COMP_CWORD="1")
    out = subprocess.run([sys.executable, "-m", "ebpm"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert "plain,tree" in out.stdout and "plain,trust" in out.stdout, out


def test_man_pages(capsys, tmp_path: Path) -> None:
    r = ebpm(capsys, "man", "trust", "add")
    assert r.out.startswith('.TH "EBPM-TRUST-ADD" "1"') and ".SH EXAMPLES" in r.out
    r = ebpm(capsys, "man", "--dir", str(tmp_path))
    assert r.code == 0
    pages = {p.name for p in tmp_path.iterdir()}
    assert {"ebpm.1", "ebpm-push.1", "ebpm-trust-add.1", "ebpm-registry-up.1"} <= pages
    if shutil.which("man"):
        import subprocess

        out = subprocess.run(["man", "-l", str(tmp_path / "ebpm-push.1")], capture_output=True,
                             text=True, env=dict(os.environ, MANWIDTH="100"))
        assert "EXAMPLES" in out.stdout and "ebpm push" in out.stdout


def test_man_command_dir_writes_that_command_only(capsys, tmp_path: Path) -> None:
    """`ebpm man push --dir D` wrote all 52 pages; `ebpm man --dir ''` printed ebpm(1)."""
    r = ebpm(capsys, "man", "push", "--dir", str(tmp_path / "push"))
    assert r.code == 0 and [p.name for p in (tmp_path / "push").iterdir()] == ["ebpm-push.1"]
    r = ebpm(capsys, "man", "trust", "--dir", str(tmp_path / "trust"))
    assert r.code == 0 and sorted(p.name for p in (tmp_path / "trust").iterdir()) == [
        "ebpm-trust-add.1", "ebpm-trust-list.1", "ebpm-trust-rm.1", "ebpm-trust.1"]
    r = ebpm(capsys, "man", "nope", "--dir", str(tmp_path / "nope"))
    assert r.code == 2 and not (tmp_path / "nope").exists()
    r = ebpm(capsys, "man", "--dir", "")
    assert r.code == 2 and r.out == "" and "an empty path names nothing to write" in r.err


# -- trust add/rm -------------------------------------------------------------------------------

def test_a_failed_trust_add_leaves_the_policy_as_it_was(capsys, tmp_path: Path) -> None:
    assert ebpm(capsys, "key", "generate", "--trust", "localhost:5000/**").code == 0
    before = Path(user_policy_path()).read_bytes()
    garbage = tmp_path / "random.pub"
    garbage.write_bytes(os.urandom(300))
    hostname = tmp_path / "hostname"
    hostname.write_text("myhost\n")
    for bad in (hostname, garbage):
        r = ebpm(capsys, "trust", "add", "localhost:5000/x/*", "--key", str(bad))
        assert r.code != 0 and "PUBLIC KEY" in r.err, r.err
        assert Path(user_policy_path()).read_bytes() == before
    assert ebpm(capsys, "trust", "list").code == 0


def test_trust_rm_repairs_a_broken_policy(capsys, tmp_path: Path) -> None:
    assert ebpm(capsys, "key", "generate", "--trust", "localhost:5000/**").code == 0
    # hand-edited: a rule naming a file that is no key
    with Path(user_policy_path()).open("a") as f:
        f.write('\n[[trust]]\nscope = "localhost:5000/z/*"\nkeys = ["/etc/hostname"]\n')
    assert ebpm(capsys, "trust", "list").code != 0
    r = ebpm(capsys, "trust", "rm", "localhost:5000/z/*")
    assert r.code == 0, r.err
    r = ebpm(capsys, "trust", "list")
    assert r.code == 0 and "localhost:5000/**" in r.out


def test_what_writes_the_policy_keeps_its_saved_document_in_step(capsys) -> None:
    """`key generate --trust`, `trust add` and `trust rm` write the policy, then its parsed
    form beside it (docs/signing.md): after each, the saved text is the policy's, byte for
    byte."""
    from ebpm.trust.policy import saved_document_path

    policy = Path(user_policy_path())
    saved = Path(saved_document_path(str(policy)))
    for args in (("key", "generate", "--trust", "localhost:5000/**"),
                 ("trust", "add", "localhost:5000/x/*", "--key", "default"),
                 ("trust", "rm", "localhost:5000/**")):
        assert ebpm(capsys, *args).code == 0
        assert json.loads(saved.read_bytes())["text"].encode() == policy.read_bytes(), args
    assert ebpm(capsys, "trust", "list").code == 0


# -- references and arguments -------------------------------------------------------------------

@pytest.mark.parametrize("command", ["tags", "inspect", "pull"])
def test_a_registry_alone_is_not_a_repository(capsys, command: str) -> None:
    r = ebpm(capsys, command, "localhost:5000")
    assert r.code != 0
    assert "localhost:5000 is a registry, not a repository" in r.err
    assert "localhost:5000/REPOSITORY" in r.err


def test_push_bare_object_needs_a_tag_and_push_takes_dot(capsys, registry: Registryd,
                                                         hello_object: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    obj = tmp_path / "hello.bpf.o"
    shutil.copy(hello_object, obj)
    r = ebpm(capsys, "push", str(obj), f"{registry.host}/bare/hello")
    assert r.code == 2 and "has no version; push it to a version tag" in r.err, r.err
    r = ebpm(capsys, "push", str(obj), f"{registry.host}/bare/hello:1.0.0")
    assert r.code == 0 and "pushed (" in r.out, r.err
    r = ebpm(capsys, "push", str(obj), f"{registry.host}/bare/hello:1.0.1")
    assert "pushed (1 new blob)" in r.out, r.out  # only the config changed


@pytest.mark.kernel
def test_pull_o_dir_runs(capsys, registry: Registryd, hello_object: Path, tmp_path: Path,
                         monkeypatch) -> None:
    from tests.loader.conftest import require_bpf

    require_bpf()
    ref = f"{registry.host}/pulled/hello:1.0.0"
    assert ebpm(capsys, "push", str(hello_object), ref).code == 0
    out = tmp_path / "out"
    r = ebpm(capsys, "pull", "--allow-unsigned", ref, "-o", str(out))
    assert r.code == 0, r.err
    r = ebpm(capsys, "run", str(out), "--duration", "0.2")
    assert r.code == 0, r.err
    # with a WebAssembly userspace, --json would be silently ignored: it is refused instead
    (out / "hello.wasm").write_bytes(b"\0asm\x01\0\0\0")
    r = ebpm(capsys, "run", str(out), "--json", "--duration", "0.2")
    assert r.code == 2 and "--json: the package runs its own WebAssembly userspace" in r.err, r.err


@pytest.mark.kernel
def test_publish_without_ref_and_push_without_path(capsys, registry: Registryd, tmp_path: Path,
                                                   monkeypatch) -> None:
    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    monkeypatch.chdir(tmp_path)
    assert ebpm(capsys, "init", "pubtool").code == 0
    monkeypatch.chdir(tmp_path / "pubtool")
    r = ebpm(capsys, "publish")
    assert r.code == 0, r.err
    assert f"{registry.host}/pubtool:0.1.0  sha256:" in r.out
    r = ebpm(capsys, "push", f"{registry.host}/tools/pubtool:0.1.0")  # PATH defaults to .
    assert r.code == 0 and f"{registry.host}/tools/pubtool:0.1.0" in r.out, r.err


# -- dependencies: install --frozen --offline, tree --json --------------------------------------

def test_install_frozen_offline_and_tree_json(capsys, registry: Registryd, tmp_path: Path,
                                              monkeypatch) -> None:
    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    publish(registry, {"cli-a": {"1.0.0": {"cli-b": "^1"}}, "cli-b": {"1.0.0": {}}})
    app = project(tmp_path / "app", {"cli-a": "^1"})
    monkeypatch.chdir(app)
    assert ebpm(capsys, "lock", "--allow-unsigned").code == 0
    r = ebpm(capsys, "install", "--frozen", "--offline", "--allow-unsigned")
    assert r.code == 0, r.err
    r = ebpm(capsys, "tree", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert (doc["name"], doc["version"]) == ("app", "0.1.0")  # apart, as in every node
    [a] = doc["dependencies"]
    assert (a["name"], a["version"], a["package"]) == ("cli-a", "1.0.0", f"{registry.host}/cli-a")
    assert [b["name"] for b in a["dependencies"]] == ["cli-b"]
    r = ebpm(capsys, "outdated", "-o", "json")
    assert r.code == 0 and json.loads(r.out) == []
    publish(registry, {"cli-b": {"1.1.0": {}}})
    r = ebpm(capsys, "outdated")
    assert r.code == 3, r.err  # ExitStatus.OUTDATED
    assert r.out.split()[:4] == ["PACKAGE", "CURRENT", "WANTED", "LATEST"]  # as other tables


# -- small things -------------------------------------------------------------------------------

def test_list_json_keys_are_the_table_columns(capsys, registry: Registryd,
                                              hello_object: Path) -> None:
    ref = f"{registry.host}/listed/hello:1.0.0"
    assert ebpm(capsys, "push", str(hello_object), ref).code == 0
    assert ebpm(capsys, "pull", "--allow-unsigned", ref).code == 0
    header = ebpm(capsys, "list").out.splitlines()[0].split()
    [row] = json.loads(ebpm(capsys, "list", "--json").out)
    assert sorted(row) == sorted(h.lower() for h in header)
    assert row["reference"] == ref


# -- loopback spellings -------------------------------------------------------------------------

@pytest.mark.parametrize("trusted", ["localhost", "127.0.0.1"])
def test_loopback_spellings_of_one_registry_are_one(capsys, registry: Registryd,
                                                    hello_object: Path, trusted: str) -> None:
    # `ebpm registry up` says 127.0.0.1:5000, the docs' key is trusted for localhost:5000/**
    port = registry.host.rsplit(":", 1)[1]
    assert ebpm(capsys, "key", "generate", "--trust", f"{trusted}:{port}/**").code == 0
    r = ebpm(capsys, "push", str(hello_object), f"127.0.0.1:{port}/loop/hello:1.0.0", "--sign")
    assert r.code == 0, r.err
    for host in ("127.0.0.1", "localhost"):
        r = ebpm(capsys, "pull", f"{host}:{port}/loop/hello:1.0.0")
        assert r.code == 0, (host, r.err)


def test_run_takes_vv_after_the_target(capsys, tmp_path: Path) -> None:
    # docs/running.md's hint says "run with -vv": wherever it is typed, it is ebpm's
    for args in (["run", str(tmp_path / "none.bpf.o"), "-vv"],
                 ["run", "-vv", str(tmp_path / "none.bpf.o")]):
        r = ebpm(capsys, *args)
        assert r.code == 1 and "no such file or directory" in r.err, r.err


@pytest.mark.parametrize(("registry", "port"), [
    (None, 5000), ("localhost:5001", 5001), ("127.0.0.1:6000", 6000), ("[::1]:7000", 7000),
    ("ghcr.io", 5000), ("registry.example:5002", 5000), ("localhost", 5000)])
def test_registry_up_listens_where_short_names_point(monkeypatch, registry, port) -> None:
    from ebpm.dev.registry import default_port

    if registry is None:
        monkeypatch.delenv("EBPM_REGISTRY", raising=False)
    else:
        monkeypatch.setenv("EBPM_REGISTRY", registry)
    assert default_port() == port
