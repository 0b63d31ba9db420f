"""Artifact format v1: exact bytes, determinism, and refusal of unsafe manifests."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ebpm.errors import DigestMismatchError, ManifestError, TooLargeError
from ebpm.oci.artifact import (
    MAX_EMBEDDED_CONFIG,
    Layer,
    check_package_manifest,
    created_from_epoch,
    pack,
    safe_title,
)
from ebpm.oci.model import (
    ARTIFACT_TYPE,
    BPF_OBJECT_TYPE,
    BTF_TYPE,
    CONFIG_TYPE,
    MANIFEST_V1,
    MAX_MANIFEST_SIZE,
    README_TYPE,
    Manifest,
)
from ebpm.package import PackageConfig

CONFIG = PackageConfig(name="hello", version="1.0.0").to_json()


def _pack() -> tuple[bytes, str]:
    art = pack(CONFIG, [Layer(BPF_OBJECT_TYPE, "hello.bpf.o", b"\x7fELF..."),
                        Layer(README_TYPE, "README.md", b"# hello\n")],
               annotations={"org.opencontainers.image.version": "1.0.0",
                            "org.opencontainers.image.created": ""})
    return art.manifest_bytes, art.digest


def test_manifest_bytes_are_compact_sorted_and_digest_matches() -> None:
    data, digest = _pack()
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    doc = json.loads(data)
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert doc["mediaType"] == MANIFEST_V1
    assert doc["artifactType"] == ARTIFACT_TYPE
    assert doc["config"]["mediaType"] == CONFIG_TYPE
    assert [x["annotations"]["org.opencontainers.image.title"] for x in doc["layers"]] == [
        "hello.bpf.o", "README.md"]
    assert doc["annotations"] == {"org.opencontainers.image.version": "1.0.0"}  # empty dropped


def test_pack_is_deterministic_and_round_trips() -> None:
    a, da = _pack()
    b, db = _pack()
    assert (a, da) == (b, db)
    m = Manifest.from_bytes(a)
    assert m.to_bytes() == a
    check_package_manifest(m)


def test_a_small_config_travels_in_the_manifest_too() -> None:
    """The config's descriptor embeds it (image-spec 1.1 `data`, base64); a reader gets it back
    checked, and a config above the cap (or a git build's) is only named."""
    data, _ = _pack()
    doc = json.loads(data)
    assert base64.b64decode(doc["config"]["data"]) == CONFIG
    assert Manifest.from_bytes(data).config.data == CONFIG
    big = PackageConfig(name="hello", version="1.0.0", description="x" * MAX_EMBEDDED_CONFIG)
    for art in (pack(big.to_json(), [Layer(BPF_OBJECT_TYPE, "h.bpf.o", b"o")], annotations={}),
                pack(CONFIG, [Layer(BPF_OBJECT_TYPE, "h.bpf.o", b"o")], annotations={},
                     embed=False)):
        assert "data" not in json.loads(art.manifest_bytes)["config"]
        assert Manifest.from_bytes(art.manifest_bytes).config.data is None


@pytest.mark.parametrize("change", ["other bytes", "longer", "not base64", "not a string"])
def test_embedded_data_that_is_not_the_blob_is_refused(change: str) -> None:
    """A manifest whose config `data` is not exactly the blob its digest and size name is
    refused when parsed, naming the manifest (never read, never fetched instead)."""
    doc = json.loads(_pack()[0])
    doc["config"]["data"] = {
        "other bytes": base64.b64encode(CONFIG.replace(b"hello", b"jello")).decode(),
        "longer": base64.b64encode(CONFIG + b" ").decode(),
        "not base64": "!!" + doc["config"]["data"],
        "not a string": 42,
    }[change]
    with pytest.raises((ManifestError, DigestMismatchError), match="ref: config: embedded data"):
        Manifest.from_bytes(json.dumps(doc).encode(), where="ref")


def test_small_layers_travel_in_the_manifest_too() -> None:
    """Layers are embedded in order while the manifest's embedded bytes (the config's
    included) stay within MAX_EMBEDDED; the first that does not fit ends it; a git build's
    (embed=False) carry nothing. Such a manifest stays far below the manifest cap (limits),
    and a manifest over that cap is still refused with its one-line error."""
    from ebpm.limits import limits
    from ebpm.oci.artifact import MAX_EMBEDDED

    room = MAX_EMBEDDED - len(CONFIG)
    fits, rest = b"a" * (room - 10), b"b" * 10
    art = pack(CONFIG, [Layer(BPF_OBJECT_TYPE, "h.bpf.o", fits),
                        Layer(BTF_TYPE, "h.btf", rest + b"!"),
                        Layer(README_TYPE, "README.md", b"")], annotations={})
    parsed = Manifest.from_bytes(art.manifest_bytes)
    assert parsed.config.data == CONFIG
    assert [d.data for d in parsed.layers] == [fits, None, None]  # 11 > 10 left: ends it
    exact = pack(CONFIG, [Layer(BPF_OBJECT_TYPE, "h.bpf.o", fits + rest)], annotations={})
    assert Manifest.from_bytes(exact.manifest_bytes).layers[0].data == fits + rest
    cap = limits().manifest_size
    assert len(exact.manifest_bytes) < cap // 16  # ~90 KiB at most, the cap is 4 MiB
    plain = pack(CONFIG, [Layer(BPF_OBJECT_TYPE, "h.bpf.o", b"o")], annotations={}, embed=False)
    assert "data" not in plain.manifest_bytes.decode()
    doc = json.loads(exact.manifest_bytes)
    doc["annotations"] = {"pad": "x" * cap}
    with pytest.raises(TooLargeError, match="ref: .* exceeds the .*-byte cap"):
        Manifest.from_bytes(json.dumps(doc).encode(), where="ref")


def test_created_only_from_source_date_epoch() -> None:
    assert created_from_epoch(None) == ""
    assert created_from_epoch("0") == "1970-01-01T00:00:00Z"
    with pytest.raises(ManifestError):
        created_from_epoch("yesterday")


@pytest.mark.parametrize("title", ["../evil", "a/b", "..", ".hidden", "", "x" * 300, "/etc/x"])
def test_unsafe_titles_refused(title: str) -> None:
    with pytest.raises(ManifestError):
        safe_title(title)


@given(st.one_of(st.text(alphabet="aZ09._+-/\\ \n\u00e9\x00", max_size=8),
                 st.integers(250, 260).map(lambda n: "a" * n)))
@settings(max_examples=300, deadline=None)
def test_safe_titles_are_the_patterns(title: str) -> None:
    """Titles are checked without a pattern compiled at import, as the pattern did."""
    import re

    want = bool(re.fullmatch(r"[A-Za-z0-9._+-]{1,255}", title)) and not title.startswith(".")
    try:
        assert safe_title(title) == title and want
    except ManifestError:
        assert not want


def test_manifest_with_traversal_title_refused() -> None:
    data, _ = _pack()
    doc = json.loads(data)
    doc["layers"][0]["annotations"]["org.opencontainers.image.title"] = "../../etc/passwd"
    with pytest.raises(ManifestError, match="not a plain file name"):
        check_package_manifest(Manifest.from_bytes(json.dumps(doc).encode()))


def test_foreign_artifacts_refused() -> None:
    data, _ = _pack()
    doc = json.loads(data)
    doc["artifactType"] = "application/vnd.oci.image.config.v1+json"
    with pytest.raises(ManifestError, match="not an ebpm package"):
        check_package_manifest(Manifest.from_bytes(json.dumps(doc).encode()))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": []}
    with pytest.raises(ManifestError, match="image index"):
        Manifest.from_bytes(json.dumps(index).encode())


def test_oversized_and_garbage_manifests_refused() -> None:
    with pytest.raises(TooLargeError):
        Manifest.from_bytes(b" " * (MAX_MANIFEST_SIZE + 1))
    for bad in (b"not json", b"[]", b'{"schemaVersion":1}',
                b'{"schemaVersion":2,"config":{},"layers":[]}'):
        with pytest.raises(ManifestError):
            Manifest.from_bytes(bad)


def test_the_format_doc_example_is_what_pack_makes() -> None:
    """docs/format.md's example manifest (wrapped there) is byte for byte what pack() makes of
    its inputs, digest included."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    block = doc.split("Example (`SOURCE_DATE_EPOCH=1700000000`", 1)[1].split("```", 2)[1]
    config = PackageConfig(name="hello", version="1.0.0", description="Trace openat",
                           license="GPL-2.0", authors=("Ada <ada@example.com>",))
    art = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "hello.bpf.o", b"\x7fELF"),
                                  Layer(README_TYPE, "README.md", b"# hello\n")],
               annotations={"org.opencontainers.image.authors": "Ada <ada@example.com>",
                            "org.opencontainers.image.created": created_from_epoch("1700000000"),
                            "org.opencontainers.image.description": "Trace openat",
                            "org.opencontainers.image.licenses": "GPL-2.0",
                            "org.opencontainers.image.version": "1.0.0"})
    assert "".join(block.split()) == art.manifest_bytes.decode().replace(" ", "")
    assert f"Its digest is `{art.digest}`" in doc.replace("\n", " ")
