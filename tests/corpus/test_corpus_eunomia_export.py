"""`ebpm export --format eunomia`, checked against eunomia-bpf's reference reader.

No ecli binary can be had here (crates.io is unreachable), so what is checked is what ecli's
loader (bpf-loader-rs) does before it runs anything, read from its vendored source
(tests/corpus/eunomia-bpf/reference, see serde_model.py):

1. serde: the JSON deserializes as `ComposedObjectInner` (every required field, types, ranges,
   enum tags), then base64 -> zlib -> the size `bpf_object_size` says (`ComposedObject`);
2. `check_export_types_btf`: each export type is a struct of the object's BTF with that id,
   name and member list;
3. `BpfSkeletonBuilder::build` + `load_and_attach`: libbpf opens the object under `obj_name`
   and every meta map `name` and prog `name` is found in it (ecli unwraps them), each data
   section is `.rodata` or `.bss` with a map of ident `rodata`/`bss` and a BTF datasec.

The model must accept every upstream package.json vendored here (they are ecc's own output)
and refuse what serde would. Then every vendored package goes export -> ebpm's own reader
-> the same programs, maps, flags and event type, and the runnable ones print the same fields.
Not checked: ecli's own run (its attach code, its event printer) — no binary.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from ebpm.transfer import formats
from tests.corpus.conftest import CORPUS, LOADED_NAMES, ebpm_cli, ebpm_run
from tests.corpus.serde_model import Model, check_export_types

EUNOMIA = CORPUS / "eunomia-bpf"
PACKAGES = ["github-assets/package.json", "ecli-tests/bootstrap.json",
            "int128_test/package.json", "simple_prog_2/simple_prog_2.package.json",
            "simple_prog_3/package.json", "simple_prog_4/package.json",
            "simple_prog_5/package.json", "simple_prog_6/package.json"]
MODEL = Model.parse()


def check_as_ecli(doc: dict[str, Any]) -> bytes:
    """Everything ecli's loader checks before it loads; returns the object."""
    MODEL.check(doc, "ComposedObjectInner")
    obj = zlib.decompress(base64.b64decode(doc["bpf_object"], validate=True))
    assert len(obj) == doc["bpf_object_size"]
    meta = doc["meta"]
    check_export_types(meta, obj)
    skel = meta["bpf_skel"]
    from ebpm.loader import libbpf
    from ebpm.loader.btf import Btf, Kind

    opened = libbpf.BpfObject.open_memory(obj, name=skel["obj_name"])
    try:
        maps = {m.name for m in opened.maps}
        progs = {p.name for p in opened.programs}
    finally:
        opened.close()
    assert {m["name"] for m in skel.get("maps") or []} <= maps, (skel["maps"], maps)
    assert {p["name"] for p in skel.get("progs") or []} <= progs
    idents = {m["ident"]: m["name"] for m in skel.get("maps") or []}
    btf = Btf.parse(obj)
    for section in skel["data_sections"]:
        assert section["name"] in (".rodata", ".bss"), section["name"]
        assert section["name"].lstrip(".") in idents
        assert btf.find(section["name"], Kind.DATASEC) is not None
    return obj


def test_the_model_is_the_reference_readers() -> None:
    fields = {f.name for f in MODEL.structs["ComposedObjectInner"]}
    assert fields == {"bpf_object", "bpf_object_size", "meta"}
    skel = {f.name: f for f in MODEL.structs["BpfSkeletonMeta"]}
    assert set(skel) == {"data_sections", "maps", "progs", "obj_name", "doc"}
    assert skel["maps"].null_is_default and not skel["obj_name"].default
    prog = {f.name for f in MODEL.structs["ProgMeta"] if not f.flatten}
    assert prog == {"name", "attach", "link"}
    tags = {v.name for v in MODEL.enums["MapExportConfig"]}
    assert tags == {"no_export", "btf_type_id", "custom_members", "default"}


@pytest.mark.parametrize("path", PACKAGES)
def test_upstream_packages_pass_the_model(path: str) -> None:
    check_as_ecli(json.loads((EUNOMIA / path).read_text()))


def test_the_model_refuses_what_serde_refuses() -> None:
    good = json.loads((EUNOMIA / "ecli-tests" / "bootstrap.json").read_text())
    for breaks, message in (
        (lambda d: d["meta"]["bpf_skel"].pop("obj_name"), "missing field `obj_name`"),
        (lambda d: d["meta"]["bpf_skel"]["progs"][0].update(link="yes"), "a boolean"),
        (lambda d: d.update(bpf_object_size=-1), "usize"),
        (lambda d: d["meta"]["bpf_skel"]["maps"][0].update(export_config="everything"),
         "unit variant"),
        (lambda d: d["meta"].pop("bpf_skel"), "missing field `bpf_skel`"),
    ):
        doc = copy.deepcopy(good)
        breaks(doc)
        with pytest.raises(ValueError, match=message):
            MODEL.check(doc, "ComposedObjectInner")
    doc = copy.deepcopy(good)
    doc["meta"]["bpf_skel"]["maps"] = None  # DefaultOnNull: an empty list
    doc["meta"]["unknown_key"] = 1  # no deny_unknown_fields
    MODEL.check(doc, "ComposedObjectInner")
    doc["meta"]["export_types"][0]["type_id"] += 1
    with pytest.raises(ValueError, match="not struct|don't match"):
        check_as_ecli(doc)


def same_package(a: formats.Unpacked, b: formats.Unpacked) -> None:
    assert a.object == b.object
    assert [(p.name, p.section) for p in a.config.programs] == [
        (p.name, p.section) for p in b.config.programs]
    assert {m.name for m in a.config.maps} == {m.name for m in b.config.maps}
    assert [(e.map, e.type) for e in a.config.events] == [(e.map, e.type)
                                                          for e in b.config.events]
    assert [(x.name, x.type) for x in a.config.args] == [(x.name, x.type)
                                                         for x in b.config.args]


@pytest.mark.parametrize("path", PACKAGES)
def test_export_round_trip(path: str, tmp_path: Path) -> None:
    """package.json -> `ebpm export --format eunomia` -> what ecli checks -> ebpm's reader."""
    out = tmp_path / "exported.json"
    ebpm_cli("export", str(EUNOMIA / path), "--format", "eunomia", "-o", str(out))
    exported = json.loads(out.read_text())
    check_as_ecli(exported)
    original = formats.unpack((EUNOMIA / path).read_bytes(), where=path, name="x")
    again = formats.unpack(out.read_bytes(), where=str(out), name="x")
    same_package(original, again)


def exec_true() -> None:
    subprocess.run(["/bin/true"], check=True)


@pytest.mark.kernel
@pytest.mark.parametrize("path", ["ecli-tests/bootstrap.json", "simple_prog_3/package.json"])
def test_exported_package_prints_the_same_fields(path: str, tmp_path: Path,
                                                 kernel: None) -> None:
    LOADED_NAMES.update({"handle_exec", "handle_exit", "handle_tp"})
    out = tmp_path / "exported.json"
    ebpm_cli("export", str(EUNOMIA / path), "--format", "eunomia", "-o", str(out))
    runs = [ebpm_run(p, duration=10, max_events=3, trigger=exec_true)
            for p in (EUNOMIA / path, out)]
    for run in runs:
        assert run.code == 0 and run.events, run.err
    assert [list(e) for e in runs[0].events[:1]] == [list(e) for e in runs[1].events[:1]]
    assert runs[0].record("start")["attached"] == runs[1].record("start")["attached"]
