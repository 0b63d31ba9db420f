"""Format detection over the vendored third-party blobs: bytes decide, never file names."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import pytest

from ebpm.errors import ManifestError, UsageError
from ebpm.transfer import formats

CORPUS = Path(__file__).resolve().parent
EUNOMIA = CORPUS / "eunomia-bpf"
WASM_BPF = CORPUS / "wasm-bpf" / "runtime-tests"

PACKAGE_JSONS = sorted(
    p for p in EUNOMIA.rglob("*.json") if not p.name.endswith("skel.json")
)


def test_every_vendored_blob_is_told_by_its_bytes(tmp_path: Path) -> None:
    expected = {".wasm": formats.WASM, ".o": formats.BPF_OBJECT}
    seen = set()
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.suffix not in (".wasm", ".o", ".json"):
            continue
        data = path.read_bytes()
        want = expected.get(path.suffix) or (
            formats.EUNOMIA_SKELETON if path.name.endswith("skel.json") else formats.EUNOMIA)
        assert formats.detect(data) == want, path
        # the name plays no part: the same bytes under a misleading name
        renamed = tmp_path / "data.txt"
        renamed.write_bytes(data)
        assert formats.detect(renamed.read_bytes()) == want
        seen.add(want)
    assert seen == {formats.WASM, formats.BPF_OBJECT, formats.EUNOMIA, formats.EUNOMIA_SKELETON}


@pytest.mark.parametrize("path", PACKAGE_JSONS, ids=lambda p: str(p.relative_to(EUNOMIA)))
def test_eunomia_package_json_unpacks(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    pkg = formats.unpack(path.read_bytes(), where=str(path), name="x")
    assert pkg.format == formats.EUNOMIA and pkg.object is not None
    assert len(pkg.object) == doc["bpf_object_size"]
    assert formats.detect(pkg.object) == formats.BPF_OBJECT
    progs = doc["meta"]["bpf_skel"].get("progs") or []
    assert {p.name for p in pkg.config.programs} == {p["name"] for p in progs}


def test_eunomia_meta_becomes_the_package_config() -> None:
    path = EUNOMIA / "ecli-tests" / "bootstrap.json"
    pkg = formats.unpack(path.read_bytes(), where=str(path), name="bootstrap")
    config = pkg.config
    assert [(e.map, e.type) for e in config.events] == [("rb", "event")]  # export_types
    assert [a.name for a in config.args] == ["min_duration_ns"]  # .rodata data section
    assert {p.section for p in config.programs} == {"tp/sched/sched_process_exec",
                                                    "tp/sched/sched_process_exit"}
    # a `const` (not volatile) global that eunomia lists is settable too
    simple = EUNOMIA / "github-assets" / "package.json"
    args = formats.unpack(simple.read_bytes(), where="x", name="simple").config.args
    assert [(a.name, a.type) for a in args] == [("pid_filter", "int")]


def test_to_eunomia_round_trips() -> None:
    path = EUNOMIA / "ecli-tests" / "bootstrap.json"
    pkg = formats.unpack(path.read_bytes(), where=str(path), name="bootstrap")
    assert pkg.object is not None
    written = formats.to_eunomia(pkg.object, pkg.config)
    again = formats.unpack(written, where="export", name="bootstrap")
    assert again.object == pkg.object
    assert again.config.events == pkg.config.events
    assert [a.name for a in again.config.args] == ["min_duration_ns"]
    doc = json.loads(written)
    export = doc["meta"]["export_types"][0]
    original = json.loads(path.read_bytes())["meta"]["export_types"][0]
    assert export["name"] == original["name"] and export["size"] == original["size"]
    assert [m["name"] for m in export["members"]] == [m["name"] for m in original["members"]]


def test_wasm_modules_embed_their_object() -> None:
    for name in ("bootstrap.wasm", "execve.wasm", "rust-bootstrap.wasm"):
        data = (WASM_BPF / name).read_bytes()
        pkg = formats.unpack(data, where=name, name=formats.package_name(name))
        assert pkg.format == formats.WASM and pkg.object is None and pkg.wasm == data
        config = formats.wasm_config(data, name="x")
        assert config.programs, name  # read from the embedded object, for push and inspect
    assert formats.package_name("go-execve.wasm") == "go-execve"


def test_damaged_and_foreign_blobs_fail_with_one_line() -> None:
    good = json.loads((EUNOMIA / "simple_prog_4" / "package.json").read_bytes())
    short = dict(good, bpf_object_size=good["bpf_object_size"] + 1)
    with pytest.raises(ManifestError, match="bpf_object_size says"):
        formats.unpack(json.dumps(short).encode(), where="p.json", name="x")
    garbage = dict(good, bpf_object=base64.b64encode(zlib.compress(b"hello")).decode(),
                   bpf_object_size=5)
    with pytest.raises(ManifestError, match="not a BPF ELF"):
        formats.unpack(json.dumps(garbage).encode(), where="p.json", name="x")
    with pytest.raises(ManifestError, match="not base64"):
        formats.unpack(b'{"bpf_object": "%%%"}', where="p.json", name="x")
    with pytest.raises(UsageError, match="skeleton"):
        formats.unpack((EUNOMIA / "simple_prog_4" / "test.skel.json").read_bytes(),
                       where="s.json", name="x")
    with pytest.raises(UsageError, match="machine 62"):
        formats.unpack(Path("/bin/true").read_bytes(), where="/bin/true", name="x")
    with pytest.raises(UsageError, match="not a BPF object, wasm module"):
        formats.unpack(b"hello", where="x", name="x")


def test_manifest_format_knows_ecli_wasm_images() -> None:
    from ebpm.oci.model import CONFIG_TYPE

    assert formats.manifest_format(CONFIG_TYPE, []) == "ebpm"
    assert formats.manifest_format(formats.WASM_IMAGE_CONFIG_TYPE,
                                   [formats.WASM_IMAGE_LAYER_TYPE]) == "wasm-image"
    assert formats.manifest_format("application/x-other", ["x"]) == "unknown"
