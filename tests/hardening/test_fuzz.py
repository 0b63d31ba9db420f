"""Issue 13: a fuzz target (hypothesis) for the parsers a hostile registry, archive or file
feeds: manifests, descriptors, image indexes, signature manifests and payloads, signatures,
package configs and the trust policy. Whatever the input, each either parses or raises its
EbpmError (a one-line error with a hint), never anything else -- bounded in examples and size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebpm.errors import EbpmError
from ebpm.oci.model import Descriptor, Manifest
from ebpm.oci.referrers import parse_index
from ebpm.oci.signature import decode_signature, parse_manifest, parse_payload
from ebpm.package import PackageConfig
from ebpm.trust.policy import parse_policy
from tests.hardening.conftest import tiny_artifact

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=15), inner,
                                                                 max_size=5),
    max_leaves=30,
)
VALID = json.loads(tiny_artifact().manifest_bytes)
KEYS = ["schemaVersion", "mediaType", "artifactType", "config", "layers", "annotations",
        "subject", "digest", "size", "manifests"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid manifest with some fields replaced, removed or added."""
    doc: dict[str, Any] = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(KEYS))
        action = draw(st.sampled_from(["set", "drop", "nest"]))
        if action == "drop":
            doc.pop(key, None)
        elif action == "set":
            doc[key] = draw(json_values)
        else:
            target = doc.get(draw(st.sampled_from(["config", "layers"])))
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS))] = draw(json_values)
            elif isinstance(target, list) and target and isinstance(target[0], dict):
                target[0][draw(st.sampled_from(KEYS))] = draw(json_values)
    return json.dumps(doc).encode()


DEEP = st.integers(1000, 50000).map(lambda n: b"[" * n + b"]" * n)  # found: RecursionError
inputs = (st.binary(max_size=512) | json_values.map(lambda v: json.dumps(v).encode())
          | mutated() | DEEP)


def _only_ebpm_errors(call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except EbpmError as err:
        assert err.message and "\n" not in err.message.strip(), err.message


@FUZZ
@given(inputs)
def test_manifest_parser(data: bytes) -> None:
    _only_ebpm_errors(Manifest.from_bytes, data)


@FUZZ
@given(json_values)
def test_descriptor_parser(value: Any) -> None:
    _only_ebpm_errors(Descriptor.from_dict, value)


@FUZZ
@given(inputs)
def test_index_parser(data: bytes) -> None:
    _only_ebpm_errors(parse_index, data)


@FUZZ
@given(inputs)
def test_signature_manifest_parser(data: bytes) -> None:
    _only_ebpm_errors(parse_manifest, data)


@FUZZ
@given(inputs)
def test_signature_payload_parser(data: bytes) -> None:
    _only_ebpm_errors(parse_payload, data)


@FUZZ
@given(st.text(max_size=200))
def test_signature_decoder(text: str) -> None:
    _only_ebpm_errors(decode_signature, text)


@FUZZ
@given(inputs)
def test_package_config_parser(data: bytes) -> None:
    _only_ebpm_errors(PackageConfig.from_json, data)


policy_lines = st.lists(st.sampled_from([
    "[[trust]]", "[[alias]]", 'scope = "localhost:5000/**"', 'scope = "a/[s]mall"',
    'scope = "**"', 'scope = ""', "require = false", "require = 1", 'keys = ["nope.pub"]',
    "keys = []", 'keys = "x"', 'signed_identity = "match-digest"', 'signed_identity = 3',
    'names = ["a:1", "b:2"]', "version = 2", 'remap = { prefix = "a", signed_prefix = "b" }',
    'keyless = [{ identity = "i", issuer = "s" }]', "[trust]", "x = ", '"unterminated',
]), max_size=12)


@FUZZ
@given(policy_lines | st.lists(st.text(max_size=40), max_size=6)
       | st.integers(1000, 20000).map(lambda n: ["a = " + "[" * n + "]" * n]))
def test_policy_parser(lines: list[str]) -> None:
    _only_ebpm_errors(parse_policy, "\n".join(lines), Path("/nonexistent/policy.toml"))
