"""The hub's index against a real registry: catalog pagination, incremental refresh, signature
status, reverse dependencies, deletes, offline search and the CLI."""

from __future__ import annotations

import json
import os
import sys
import threading
from types import FrameType

import pytest
import requests

from ebpm.hub.crawl import WORKERS, parse_source, update
from ebpm.hub.index import HubIndex
from ebpm.hub.search import load_documents, search
from tests.cli import ebpm
from tests.hub.helpers import generate_key, package_config, publish
from tests.registryd import Registryd, start_registry

pytestmark = pytest.mark.registry

OPENSNOOP_README = "# opensnoop\n\nTrace `open()` syscalls, showing the file path.\n"


@pytest.fixture()
def reg() -> Registryd:
    """A registry of its own per test: the catalog must hold only what the test pushed."""
    reg = start_registry()
    yield reg
    reg.stop()


def test_catalog_really_paginates_and_every_repository_is_indexed(
        reg: Registryd, monkeypatch: pytest.MonkeyPatch) -> None:
    # distribution 2.8 answers /v2/_catalog 100 names at a time with a Link header: the index
    # must follow it to find all 105 repositories
    for i in range(105):
        publish(reg.host, f"many/tool{i:03d}", package_config(f"tool{i:03d}"))
    first = requests.get(f"{reg.url}/v2/_catalog", timeout=5)
    assert len(first.json()["repositories"]) == 100
    assert 'rel="next"' in first.headers["Link"]
    page = requests.get(f"{reg.url}/v2/_catalog", params={"n": 10, "last": "many/tool050"},
                        timeout=5).json()["repositories"]
    assert page[0] == "many/tool051" and len(page) == 10

    started: list[str] = []  # threads started during the refresh, by name

    def first_call(frame: FrameType, event: str, arg: object) -> None:
        started.append(threading.current_thread().name)
        sys.setprofile(None)  # (this thread's hook: seen once is enough)

    synced: list[str] = []  # what the refresh fsyncs, by path
    fsync = os.fsync

    def naming(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", naming)
    threading.setprofile(first_call)
    try:
        index, result = update([reg.host])
    finally:
        threading.setprofile(None)
    assert len(index.repositories) == 105
    assert f"{reg.host}/many/tool104" in index.repositories
    assert result.fetched == 105
    # the crawl's workers pull in place, as an install's do: no threads of each pull's own
    assert len(started) <= WORKERS, started
    # and the hub's store is one batch: its index written once, not once per version pulled
    store_index = [p for p in synced if os.path.basename(p).startswith(".index.json.")
                   and "/hub/store/" in p]
    assert len(store_index) == 1, store_index


def test_refresh_is_incremental_and_follows_tags(reg: Registryd) -> None:
    a1 = publish(reg.host, "tools/opensnoop", package_config("opensnoop", "1.0.0",
                 description="Trace open() syscalls"), readme=OPENSNOOP_README)
    index, result = update([reg.host])
    assert result.added == [f"{reg.host}/tools/opensnoop@{a1.digest}"]
    version = index.latest(f"{reg.host}/tools/opensnoop")
    assert version is not None and version.readme == OPENSNOOP_README
    assert version.config.description == "Trace open() syscalls"
    assert version.signature.state == "unsigned"
    assert version.size > 0 and version.indexed

    # nothing new: nothing fetched again
    _, again = update()
    assert again.fetched == 0 and not again.changed

    a2 = publish(reg.host, "tools/opensnoop", package_config("opensnoop", "1.1.0"))
    index, result = update()
    assert result.fetched == 1 and result.added == [f"{reg.host}/tools/opensnoop@{a2.digest}"]
    assert [v.config.version for v in index.versions_of(f"{reg.host}/tools/opensnoop")] == [
        "1.1.0", "1.0.0"]
    assert index.latest(f"{reg.host}/tools/opensnoop").digest == a2.digest  # type: ignore

    # a deleted version leaves the index (and the hub's store); the repository stays with what
    # is left
    from ebpm.hub.crawl import hub_store

    assert hub_store().holds(a2.digest)
    requests.delete(f"{reg.url}/v2/tools/opensnoop/manifests/{a2.digest}",
                    timeout=5).raise_for_status()
    index, result = update()
    assert result.removed == [f"{reg.host}/tools/opensnoop@{a2.digest}"]
    assert index.latest(f"{reg.host}/tools/opensnoop").digest == a1.digest  # type: ignore
    assert not hub_store().holds(a2.digest) and hub_store().holds(a1.digest)
    assert [e.tag for e in hub_store().entries()] == ["1.0.0"]


def test_signature_status_names_signer_and_rule_and_follows_new_signatures(
        reg: Registryd) -> None:
    generate_key("hubkey", f"{reg.host}/signed/**")
    signed = publish(reg.host, "signed/tool", package_config("tool"), sign_key="hubkey")
    later = publish(reg.host, "signed/later", package_config("later"))
    index, _ = update([reg.host])
    status = index.latest(f"{reg.host}/signed/tool").signature  # type: ignore[union-attr]
    assert status.state == "verified" and status.signed
    assert status.signers[0].key_source.endswith("hubkey.pub")
    assert status.rule.startswith(f"{reg.host}/signed/**")
    assert index.latest(f"{reg.host}/signed/later").signature.state == "unsigned"  # type: ignore

    # signed after it was indexed: the next refresh checks the signature again, and only that
    from ebpm.trust.sign import sign

    sign(later.reference, later.digest, "hubkey")
    index, result = update()
    assert result.fetched == 1 and result.resigned == [f"{reg.host}/signed/later@{later.digest}"]
    assert index.latest(f"{reg.host}/signed/later").signature.signed  # type: ignore
    assert signed.digest in index.repositories[f"{reg.host}/signed/tool"].tags.values()

    # a signed version deleted: its entries, signature included, leave the hub's store
    from ebpm.hub.crawl import hub_store

    assert any(e.tag.endswith(".sig") and e.repository.endswith("/signed/tool")
               for e in hub_store().entries())
    requests.delete(f"{reg.url}/v2/signed/tool/manifests/{signed.digest}",
                    timeout=5).raise_for_status()
    update()
    assert [e for e in hub_store().entries() if e.repository.endswith("/signed/tool")] == []
    assert not hub_store().holds(signed.digest)


def test_untrusted_signature_is_reported_not_trusted(reg: Registryd) -> None:
    generate_key("other", "example.org/**")  # a key trusted for somewhere else
    publish(reg.host, "x/tool", package_config("tool"), sign_key="other")
    index, _ = update([reg.host])
    status = index.latest(f"{reg.host}/x/tool").signature  # type: ignore[union-attr]
    assert status.state == "untrusted" and not status.signed and status.manifest
    assert status.reasons


def test_sources_glob_and_explicit_repository(reg: Registryd) -> None:
    publish(reg.host, "net/tcpconnect", package_config("tcpconnect"))
    publish(reg.host, "net/deep/xdpdrop", package_config("xdpdrop"))
    publish(reg.host, "proc/execsnoop", package_config("execsnoop"))
    index, _ = update([f"{reg.host}/net/*"])
    assert sorted(index.repositories) == [f"{reg.host}/net/tcpconnect"]
    index, _ = update([f"{reg.host}/net/**", f"{reg.host}/proc/execsnoop"])
    assert sorted(index.repositories) == [f"{reg.host}/net/deep/xdpdrop",
                                          f"{reg.host}/net/tcpconnect",
                                          f"{reg.host}/proc/execsnoop"]
    assert index.sources == [f"{reg.host}/net/*", f"{reg.host}/net/**",
                             f"{reg.host}/proc/execsnoop"]


def test_non_packages_are_skipped_once(reg: Registryd,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    blob = b"{}"
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    loc = requests.post(f"{reg.url}/v2/images/alpine/blobs/uploads/", timeout=5)
    requests.put(loc.headers["Location"], params={"digest": digest}, data=blob,
                 timeout=5).raise_for_status()
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest, "size": 2}, "layers": []}).encode()
    requests.put(f"{reg.url}/v2/images/alpine/manifests/3.19", data=manifest, timeout=5,
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
                 ).raise_for_status()
    publish(reg.host, "tools/real", package_config("real"))
    index, result = update([reg.host])
    assert list(index.repositories) == [f"{reg.host}/tools/real"]
    assert len(result.skipped) == 1 and "not an ebpm package" in result.skipped[0]
    assert result.skipped[0].count(f"{reg.host}/images/alpine") == 1  # was named twice
    _, again = update()
    assert again.skipped == [] and again.fetched == 0
    # `hub forget` forgets what it skipped there too (was: kept for good)
    assert ebpm(capsys, "hub", "forget", reg.host).code == 0
    assert HubIndex.load().skipped == {}


@pytest.mark.parametrize("cap,value", [("EBPM_MAX_PACKAGE_SIZE", "1"),
                                       ("EBPM_MAX_MANIFEST_SIZE", "100")])
def test_a_version_over_a_cap_fails_this_refresh_only(
        reg: Registryd, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        cap: str, value: str) -> None:
    """A version over a size cap was remembered as skipped (as if not a package): no later
    refresh, with the normal caps or after `hub forget`, indexed it again, and the refresh
    said nothing but a `skipped` line (exit 0)."""
    published = publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    monkeypatch.setenv(cap, value)
    r = ebpm(capsys, "hub", "refresh", reg.host)
    key = f"{reg.host}/tools/opensnoop@{published.digest}"
    assert r.code == 1 and r.err.splitlines()[0].startswith(
        f"error: hub refresh: could not index {key}: ")
    assert f"({cap})" in r.err.splitlines()[0]
    assert r.err.splitlines()[1] == (
        "hint: what failed is tried again by the next `ebpm hub refresh`")
    index = HubIndex.load()
    assert index.skipped == {} and index.sources == [reg.host] and index.versions == {}
    monkeypatch.delenv(cap)
    r = ebpm(capsys, "hub", "refresh")
    assert r.code == 0, r.err
    assert list(HubIndex.load().versions) == [key]


def test_reverse_dependencies(reg: Registryd) -> None:
    publish(reg.host, "lib", package_config("lib"))
    publish(reg.host, "app", package_config("app", dependencies={"lib": "^1.0"}))
    index, _ = update([reg.host])
    assert index.dependents() == {f"{reg.host}/lib": [f"{reg.host}/app"]}


def test_search_ranks_names_programs_descriptions_and_readmes(reg: Registryd) -> None:
    publish(reg.host, "net/tcpconnect", package_config(
        "tcpconnect", description="Trace TCP active connections",
        programs=(("tcp_v4", "tracepoint/sock/inet_sock_set_state", "tracepoint",
                   "sock/inet_sock_set_state"),)))
    publish(reg.host, "proc/runqlat", package_config(
        "runqlat", description="Run queue latency histogram",
        programs=(("sched_wakeup", "tp_btf/sched_wakeup", "tp_btf", "sched_wakeup"),
                  ("sched_switch", "tracepoint/sched/sched_switch", "tracepoint",
                   "sched/sched_switch"))), readme="Unlike tcp tools, this one...")
    publish(reg.host, "proc/offcpu", package_config(
        "offcpu", description="Off-CPU time by stack",
        programs=(("on_switch", "raw_tp/sched_switch", "raw_tracepoint", "sched_switch"),)))
    publish(reg.host, "net/xdpdrop", package_config(
        "xdpdrop", description="Drop packets early",
        programs=(("drop", "xdp", "xdp", ""),)), readme="Counts TCP and UDP drops.")
    update([reg.host])
    docs = load_documents()
    hits = search(docs, "tcp")
    assert [h.repository.split("/", 1)[1] for h in hits] == [
        "net/tcpconnect", "net/xdpdrop", "proc/runqlat"]
    assert hits[0].matched == ("name",)
    # a raw_tp program on a sched event is a tracepoint too, ranked below the exact kind
    assert [h.repository.split("/", 1)[1] for h in search(docs, "tracepoint:sched")] == [
        "proc/runqlat", "proc/offcpu"]
    assert [h.repository.split("/", 1)[1] for h in search(docs, "tp_btf:sched_wakeup")] == [
        "proc/runqlat"]
    assert search(docs, "tracepoint:sock")[0].matched == ("program",)
    assert [h.repository.split("/", 1)[1] for h in search(docs, "xdp")] == ["net/xdpdrop"]
    assert [h.repository.split("/", 1)[1] for h in search(docs, "latency sched")] == [
        "proc/runqlat"]
    assert search(docs, "nothing-like-this") == []


def test_cli_search_and_list_work_offline(reg: Registryd, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    publish(reg.host, "tools/opensnoop", package_config(
        "opensnoop", description="Trace open() syscalls"), readme=OPENSNOOP_README)
    r = ebpm(capsys, "hub", "refresh", reg.host)
    assert r.code == 0, r.err
    assert r.out.startswith("indexed 1 repository, 1 version from")
    reg.stop()  # from here on, the index alone
    r = ebpm(capsys, "--offline", "search", "open")
    assert r.code == 0, r.err
    assert f"{reg.host}/tools/opensnoop" in r.out and "Trace open() syscalls" in r.out
    r = ebpm(capsys, "search", "opensnoop", "--json")
    hits = json.loads(r.out)
    assert hits[0]["reference"] == f"{reg.host}/tools/opensnoop:1.0.0"
    assert hits[0]["matched"] == ["name"]
    r = ebpm(capsys, "hub", "list", "--json")
    assert json.loads(r.out)[0]["signature"] == "unsigned"
    r = ebpm(capsys, "--offline", "hub", "refresh")
    assert r.code == 1 and r.err.startswith("error: hub refresh: offline")


def test_an_empty_index_is_an_empty_listing(capsys: pytest.CaptureFixture[str]) -> None:
    """As docs/cli.md says, and as `hub list` did: said on stderr, [] in JSON (search failed,
    with nothing on stdout for --json)."""
    for command in (["search", "tcp"], ["hub", "list"]):
        r = ebpm(capsys, *command)
        assert r.code == 0 and r.out == ""
        assert r.err == ("the hub index is empty; index a registry first: `ebpm hub refresh "
                         "[HOST[/NAMESPACE/*]]`\n")
        r = ebpm(capsys, *command, "--json")
        assert (r.code, r.out, r.err) == (0, "[]\n", "")


def test_cli_errors_are_one_line_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    for term in ("", " "):  # matched every package
        r = ebpm(capsys, "search", term)
        assert r.code == 2 and r.err.splitlines() == [
            "error: search: no word to search for",
            "hint: give one, e.g. `ebpm search tcp`; `ebpm hub list` lists every package"]
    r = ebpm(capsys, "hub", "refresh", "http://localhost:5000")
    assert r.code == 2 and r.err.startswith("error: source 'http://localhost:5000'")


def test_tags_of_a_registry_points_to_the_hub(capsys: pytest.CaptureFixture[str]) -> None:
    # `ebpm tags HOST:PORT` used to read the host as a repository and the port as a tag
    r = ebpm(capsys, "tags", "127.0.0.1:5000")
    assert r.code == 2
    assert r.err.splitlines() == [
        "error: tags 127.0.0.1:5000: 127.0.0.1:5000 is a registry, not a repository",
        "hint: `ebpm hub refresh 127.0.0.1:5000` then `ebpm hub list` shows its repositories; "
        "`ebpm tags 127.0.0.1:5000/REPOSITORY` the tags of one"]


@pytest.mark.parametrize("text,registry,pattern", [
    ("localhost:5000", "localhost:5000", ""),
    ("127.0.0.1:5000/tools/*", "127.0.0.1:5000", "tools/*"),
    ("ghcr.io/org/tool", "ghcr.io", "org/tool"),
    ("tools/**", "localhost:5000", "tools/**"),
])
def test_parse_source(text: str, registry: str, pattern: str) -> None:
    source = parse_source(text)
    assert (source.registry, source.pattern) == (registry, pattern)


@pytest.mark.parametrize("content", [b"garbage\n", b""])
def test_a_damaged_index_hint_works(reg: Registryd, capsys: pytest.CaptureFixture[str],
                                    content: bytes) -> None:
    """An index.json that is not JSON said "run `ebpm hub refresh` to build it again", which
    failed the same way."""
    publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    assert ebpm(capsys, "hub", "refresh", reg.host).code == 0
    path = HubIndex.load().path
    assert path is not None
    path.write_bytes(content)
    for command in (["hub", "list"], ["hub", "refresh"], ["hub", "forget", reg.host]):
        r = ebpm(capsys, *command)
        assert r.code == 1 and r.out == ""
        error, hint = r.err.splitlines()
        assert error.startswith(f"error: hub index {path}: not valid JSON: ")
        assert hint == (f"hint: remove {path} and run `ebpm hub refresh [SOURCE...]` to build "
                        "it again (the sources it remembered go with it)")
    path.unlink()  # as the hint says
    assert ebpm(capsys, "hub", "refresh", reg.host).code == 0
    assert ebpm(capsys, "hub", "list").out.startswith("PACKAGE")


def test_index_survives_a_reload() -> None:
    index = HubIndex.load()
    assert index.repositories == {} and index.path is not None


def test_referrer_only_signatures_show_signed_and_are_followed(reg: Registryd) -> None:
    """Signatures stored only as OCI 1.1 referrers (`ebpm sign --referrers`, current cosign):
    the index shows them signed, a referrer added later is noticed once, and a refresh with
    nothing new checks nothing again."""
    from ebpm.trust.sign import sign

    generate_key("refkey", f"{reg.host}/ref/**")
    first = publish(reg.host, "ref/tool", package_config("tool"))
    sign(first.reference, first.digest, "refkey", referrers=True)
    later = publish(reg.host, "ref/later", package_config("later"))
    index, result = update([reg.host])
    assert sorted(result.added) == sorted([f"{reg.host}/ref/tool@{first.digest}",
                                           f"{reg.host}/ref/later@{later.digest}"])
    assert not result.skipped  # the referrers fallback tag is no version
    status = index.latest(f"{reg.host}/ref/tool").signature  # type: ignore[union-attr]
    assert status.state == "verified" and status.signed, status
    assert index.latest(f"{reg.host}/ref/later").signature.state == "unsigned"  # type: ignore
    _, again = update()
    assert again.fetched == 0 and not again.changed, again

    sign(later.reference, later.digest, "refkey", referrers=True)
    index, result = update()
    assert result.resigned == [f"{reg.host}/ref/later@{later.digest}"], result
    assert index.latest(f"{reg.host}/ref/later").signature.signed  # type: ignore
    _, again = update()
    assert again.fetched == 0 and not again.changed, again
