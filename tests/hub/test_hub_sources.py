"""The sources `hub refresh` remembers: a mistyped one is refused, `hub forget` drops one and
what only it selected."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.hub.crawl import hub_store
from ebpm.hub.index import HubIndex
from tests.cli import ebpm
from tests.hub.helpers import package_config, publish
from tests.registryd import Registryd, start_registry

pytestmark = pytest.mark.registry


@pytest.fixture()
def reg() -> Registryd:
    reg = start_registry()
    yield reg
    reg.stop()


def test_a_mistyped_source_is_an_error_and_not_remembered(reg: Registryd,
                                                          capsys: pytest.CaptureFixture[str],
                                                          ) -> None:
    """`hub refresh HOST/tols/*` or `HOST/tools/opensnop` indexed nothing, said "0 new" and
    was refreshed again forever after."""
    publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    r = ebpm(capsys, "hub", "refresh", f"{reg.host}/tools/opensnop")
    assert r.code == 1 and r.err.splitlines() == [
        f"error: hub refresh {reg.host}/tools/opensnop: no such repository",
        f"hint: check the name (`ebpm tags {reg.host}/tools/opensnop` lists its versions); "
        "nothing was indexed or remembered"]
    r = ebpm(capsys, "hub", "refresh", f"{reg.host}/tols/*")
    assert r.code == 1 and r.err.splitlines() == [
        f"error: hub refresh {reg.host}/tols/*: no repository of {reg.host}'s catalog matches",
        "hint: check the pattern ('*' is one path level, '**' any); nothing was indexed or "
        "remembered"]
    assert HubIndex.load().sources == []
    assert ebpm(capsys, "hub", "refresh", f"{reg.host}/tools/*").code == 0
    r = ebpm(capsys, "search", "opensnop")  # the same typo in a search: the name is offered
    assert r.code == 0 and r.out == "" and r.err == (
        "no package matches 'opensnop' (1 package indexed); did you mean 'opensnoop'?\n")
    # a remembered repository that later goes away is dropped quietly, not an error
    assert ebpm(capsys, "hub", "refresh", f"{reg.host}/tools/opensnoop").code == 0
    assert sorted(HubIndex.load().sources) == [f"{reg.host}/tools/*",
                                              f"{reg.host}/tools/opensnoop"]



def test_forget_drops_a_source_and_what_only_it_selected(reg: Registryd,
                                                         capsys: pytest.CaptureFixture[str],
                                                         ) -> None:
    publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    publish(reg.host, "old/thing", package_config("thing"))
    assert ebpm(capsys, "hub", "refresh", f"{reg.host}/tools/*", f"{reg.host}/old/*",
                f"{reg.host}/tools/opensnoop").code == 0
    r = ebpm(capsys, "hub", "forget", f"{reg.host}/old/*", f"{reg.host}/tools/opensnoop")
    assert r.code == 0, r.err
    assert r.out == (f"forgot {reg.host}/old/*, {reg.host}/tools/opensnoop: 1 repository, "
                     f"1 version left the index; sources now: {reg.host}/tools/*\n")
    index = HubIndex.load()
    assert sorted(index.repositories) == [f"{reg.host}/tools/opensnoop"]  # tools/* keeps it
    assert len(index.versions) == 1
    assert {e.repository for e in hub_store().entries()} == {f"{reg.host}/tools/opensnoop"}
    r = ebpm(capsys, "hub", "forget", f"{reg.host}/old/*")
    assert r.code == 1 and r.err.splitlines() == [
        f"error: hub forget {reg.host}/old/*: not a source of the index",
        f"hint: its sources: {reg.host}/tools/*"]
    assert ebpm(capsys, "--offline", "hub", "forget", f"{reg.host}/tools/*").code == 0
    assert HubIndex.load().repositories == {}


def test_serve_on_an_address_not_of_this_machine(reg: Registryd,
                                                 capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    """The hint named --port for a --host mistake, and `hub serve -o DIR` said "hub build"."""
    publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    assert ebpm(capsys, "hub", "refresh", reg.host).code == 0
    r = ebpm(capsys, "hub", "serve", "--host", "192.0.2.1", "--port", "0", "--no-refresh")
    assert r.code == 2 and r.err.splitlines() == [
        "error: hub serve: cannot listen on 192.0.2.1:0: Cannot assign requested address",
        "hint: --host takes an address of this machine (127.0.0.1, 0.0.0.0 for all)"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine\n")
    r = ebpm(capsys, "hub", "serve", "-o", str(tmp_path / "notes"), "--no-refresh")
    assert r.code == 2 and r.err.splitlines()[0] == (
        f"error: site directory {tmp_path / 'notes'} is not empty and holds no hub site "
        "(ebpm-hub.json is missing)")
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["todo.txt"]
    r = ebpm(capsys, "hub", "build", "-o", "/dev/null")
    assert r.code == 2 and r.err.splitlines() == [
        "error: site directory /dev/null is a file, not a directory",
        "hint: choose a new or empty directory; nothing was written"]


def test_one_registry_down_leaves_the_others_indexed(reg: Registryd,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Two registries, one stopped: the other is indexed and saved, the down one is named in
    one error line (exit 1, for cron) and, new, not remembered. Was: nothing indexed."""
    publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    down = start_registry()
    down.stop()
    r = ebpm(capsys, "hub", "refresh", down.host, reg.host)
    assert r.code == 1
    assert r.out == (f"indexed 1 repository, 1 version from {reg.host}: 1 new, 0 removed, "
                     "0 signatures checked again\n")
    assert r.err.splitlines() == [
        f"error: hub refresh: registry {down.host} unreachable: connection refused",
        "hint: the other sources were indexed; run again when it answers (a new source is "
        "remembered only once it does), or `ebpm hub forget SOURCE`"]
    index = HubIndex.load()
    assert index.sources == [reg.host] and list(index.repositories) == [
        f"{reg.host}/tools/opensnoop"]
    # alone, a registry that is down is the plain error, and nothing changes
    r = ebpm(capsys, "hub", "refresh", down.host)
    assert r.code == 1 and r.err.startswith(f"error: registry {down.host} unreachable")
    assert HubIndex.load().sources == [reg.host]


def test_every_source_down_claims_nothing_indexed(reg: Registryd,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every registry down: the refresh printed "indexed 1 repositories, 1 versions from no
    source", named a registry once per source of it and said "the other sources were
    indexed"."""
    other = start_registry()
    publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    publish(other.host, "tools/execsnoop", package_config("execsnoop"))
    assert ebpm(capsys, "hub", "refresh", reg.host, f"{reg.host}/tools/*", other.host).code == 0
    other.stop()
    reg.stop()
    r = ebpm(capsys, "hub", "refresh")
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines() == [
        f"error: hub refresh: registry {reg.host} unreachable: connection refused; "
        f"registry {other.host} unreachable: connection refused",
        "hint: nothing was indexed; run again when they answer"]
    assert ebpm(capsys, "hub", "forget", other.host).code == 0
    r = ebpm(capsys, "hub", "refresh")  # one registry: its own error, named once
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines() == [
        f"error: registry {reg.host} unreachable: connection refused",
        "hint: is it running? `ebpm registry up` starts one; use --offline to work from the "
        "store"]
    index = HubIndex.load()
    assert index.sources == [reg.host, f"{reg.host}/tools/*"] and len(index.versions) == 1


def test_build_refresh_with_a_remembered_registry_down_builds_and_fails(
        reg: Registryd, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    other = start_registry()
    try:
        publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
        publish(other.host, "tools/execsnoop", package_config("execsnoop"))
        assert ebpm(capsys, "hub", "refresh", reg.host, other.host).code == 0
    finally:
        other.stop()
    # the site is built, and the command fails as `hub refresh` does (it exited 0)
    r = ebpm(capsys, "hub", "build", "--refresh", "-o", str(tmp_path / "site"))
    assert r.code == 1 and r.out.startswith("wrote ")
    assert r.err.splitlines() == [
        f"error: hub build --refresh: registry {other.host} unreachable: connection refused",
        "hint: the site was built from the index as last refreshed; the other sources were "
        "indexed; run again when it answers (a new source is remembered only once it does), "
        "or `ebpm hub forget SOURCE`"]
    assert (tmp_path / "site" / "p" / other.host.replace(":", "_") / "tools" / "execsnoop"
            / "index.html").is_file()
