"""Signed identities: tags in signatures, loopback spellings, aliases, copies and mirrors
(remap), digest-only rules; with signatures and copies made by the real clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.errors import PolicyError
from ebpm.trust import keys
from ebpm.trust import policy as trust
from ebpm.trust.identity import (
    MATCH_DIGEST,
    IdentityRule,
    Remap,
    expected_identity,
    identity_error,
    normalize,
)
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.signing import clients
from tests.signing.signing_helpers import make_package_dir

# -- the pure rules -------------------------------------------------------------------------


@pytest.mark.parametrize("claimed, name", [
    ("localhost:5000/tools/demo:1.0.0", "localhost:5000/tools/demo"),
    ("127.0.0.1:5000/tools/demo", "localhost:5000/tools/demo"),
    ("[::1]:5000/tools/demo@sha256:" + "a" * 64, "localhost:5000/tools/demo"),
    ("127.8.9.10:5000/tools/demo:1.0.0", "localhost:5000/tools/demo"),
    ("docker.io/busybox", "index.docker.io/library/busybox"),
    ("registry-1.docker.io/library/busybox:1", "index.docker.io/library/busybox"),
    ("ghcr.io/Org/x:1.0", "ghcr.io/Org/x"),
])
def test_normalize(claimed: str, name: str) -> None:
    assert normalize(claimed) == name


def test_loopback_ports_differ() -> None:
    rule = IdentityRule()
    assert identity_error("localhost:5000/a", "127.0.0.1:5000/a", rule) is None
    assert identity_error("localhost:5001/a", "127.0.0.1:5000/a", rule) is not None


def test_aliases() -> None:
    rule = IdentityRule(aliases=(("registry.internal:5000", "10.1.2.3:5000"),))
    assert identity_error("10.1.2.3:5000/t/x:2", "registry.internal:5000/t/x", rule) is None
    assert identity_error("10.1.2.4:5000/t/x", "registry.internal:5000/t/x", rule)


def test_remap_and_digest_rules() -> None:
    remap = IdentityRule(remap=Remap("localhost:5000/mirror/org", "ghcr.io/org"))
    assert expected_identity("127.0.0.1:5000/mirror/org/tools/x", remap) == "ghcr.io/org/tools/x"
    assert identity_error("ghcr.io/org/tools/x:1.0.0", "localhost:5000/mirror/org/tools/x",
                          remap) is None
    wrong = identity_error("localhost:5000/mirror/org/tools/x",
                           "localhost:5000/mirror/org/tools/x", remap)
    assert wrong and "claims localhost:5000/mirror/org/tools/x" in wrong
    assert "expects ghcr.io/org/tools/x" in wrong
    # a repository outside the prefix is matched as itself
    assert identity_error("localhost:5000/mirror/orgx", "localhost:5000/mirror/orgx",
                          remap) is None
    assert identity_error("anything.example/else", "ghcr.io/org/x",
                          IdentityRule(MATCH_DIGEST)) is None


# -- the policy file ------------------------------------------------------------------------


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p" / "policy.toml"
    path.parent.mkdir(exist_ok=True)
    keys.generate("k")
    path.write_text(text.replace("KEY", str(keys.keys_dir() / "k.pub")))
    return path


def test_policy_identity_keys(tmp_path: Path) -> None:
    path = _policy(tmp_path, """
[[alias]]
names = ["registry.internal:5000", "10.1.2.3:5000"]

[[trust]]
scope = "localhost:5000/mirror/**"
keys = ["KEY"]
remap = { prefix = "localhost:5000/mirror", signed_prefix = "ghcr.io/org" }

[[trust]]
scope = "ghcr.io/**"
keys = ["KEY"]
signed_identity = "match-digest"
""")
    rules, aliases = trust._parse(path.read_text(), path)
    assert aliases == (("registry.internal:5000", "10.1.2.3:5000"),)
    assert rules[0].remap == Remap("localhost:5000/mirror", "ghcr.io/org")
    assert rules[1].signed_identity == MATCH_DIGEST
    base = trust.Policy(rules, (path,))
    other = trust.Policy((rules[0],), (path,))
    assert base.fingerprint != other.fingerprint


@pytest.mark.parametrize("body, words, line", [
    ('signed_identity = "exact"', "signed_identity must be one of", 4),
    ('remap = { prefix = "a" }', "remap is { prefix", 4),
    ('keyless = [{ identity = "a@b" }]', "exactly one of identity/identity_regexp", 4),
    ('keyless = [{ identity_regexp = "(", issuer = "x" }]', "keyless identity_regexp", 4),
    ('trusted_root = "r.json"', "only used with keyless", 4),
])
def test_policy_identity_errors(tmp_path: Path, body: str, words: str, line: int) -> None:
    path = _policy(tmp_path, f'[[trust]]\nscope = "x/**"\nkeys = ["KEY"]\n{body}\n')
    with pytest.raises(PolicyError) as info:
        trust.parse_policy(path.read_text(), path)
    assert words in info.value.message
    assert f"{path}:{line}:" in info.value.message


def test_alias_errors_and_trust_add_keeps_aliases(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = _policy(tmp_path, '[[alias]]\nnames = ["only-one:5000"]\n')
    with pytest.raises(PolicyError, match=r"\[\[alias\]\] takes names"):
        trust.parse_policy(path.read_text(), path)
    user = Path(trust.user_policy_path())
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[[alias]]\nnames = ["a.example:5000", "b.example:5000"]\n')
    trust.add_trust("a.example:5000/**", keys.keys_dir() / "k.pub")
    policy = trust.load_policy()
    assert policy.aliases == (("a.example:5000", "b.example:5000"),)
    assert policy.rules[0].scope == "a.example:5000/**"


# -- with the real clients ------------------------------------------------------------------


def _skopeo_setup(tmp: Path) -> list[str]:
    (tmp / "registries.d").mkdir(exist_ok=True)
    (tmp / "registries.d" / "default.yaml").write_text(
        "default-docker:\n  use-sigstore-attachments: true\n")
    (tmp / "policy.json").write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    return ["--policy", str(tmp / "policy.json"), "--registries.d", str(tmp / "registries.d")]


def _push_signed(capsys: pytest.CaptureFixture[str], tmp: Path, ref: str,
                 sign: bool = True) -> str:
    pkg = make_package_dir(tmp / f"pkg-{abs(hash(ref))}")
    r = ebpm(capsys, "push", *(["--sign", "--key", "pub"] if sign else []), str(pkg), ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "inspect", "--json", ref)
    assert r.code == 0, r.err
    import json

    return str(json.loads(r.out)["digest"])


@pytest.fixture
def publisher() -> keys.KeyInfo:
    return keys.generate("pub")


def test_skopeo_signature_names_the_tag(capsys: pytest.CaptureFixture[str], registry: Registryd,
                                        tmp_path: Path) -> None:
    """containers/image writes `registry/repo:tag` as the identity: it verifies by repository."""
    env = clients.client_env(tmp_path)
    _, cosign_pub = clients.cosign_keys(tmp_path, env)
    src, dst = f"{registry.host}/skopeo/src:1.0.0", f"{registry.host}/skopeo/signed:1.0.0"
    digest = _push_signed(capsys, tmp_path, src, sign=False)
    (tmp_path / "pass").write_text("cosign-test")
    clients.run("skopeo-sigstore", *_skopeo_setup(tmp_path), "copy", "--src-tls-verify=false",
                "--dest-tls-verify=false", "--preserve-digests",
                "--sign-by-sigstore-private-key", str(tmp_path / "cosign-keys" / "cosign.key"),
                "--sign-passphrase-file", str(tmp_path / "pass"),
                f"docker://{src}", f"docker://{dst}", env=env)
    trust.add_trust(f"{registry.host}/skopeo/**", cosign_pub)
    r = ebpm(capsys, "pull", dst)
    assert r.code == 0, r.err
    r = ebpm(capsys, "verify", "--json", dst)
    assert r.code == 0, r.err
    import json

    result = json.loads(r.out)
    assert result["digest"] == digest and result["status"] == "verified"
    assert [s["docker_reference"] for s in result["signers"]] == [dst]
    # the same signature does not count for another repository
    r = ebpm(capsys, "pull", src)
    assert r.code != 0
    assert "not signed" in r.err


def _copy(client: str, src: str, dst: str, digest: str, tmp: Path, env: dict[str, str]) -> None:
    """Copy a package and its `sha256-<hex>.sig` signature with `client`."""
    sig_tag = "sha256-" + digest.partition(":")[2] + ".sig"
    src_sig = src.rsplit(":", 1)[0] + ":" + sig_tag
    dst_sig = dst.rsplit(":", 1)[0] + ":" + sig_tag
    if client == "crane":
        clients.run("crane", "copy", src, dst, env=env)
        clients.run("crane", "copy", src_sig, dst_sig, env=env)
    elif client == "oras":
        for a, b in ((src, dst), (src_sig, dst_sig)):
            clients.run("oras", "cp", "--from-plain-http", "--to-plain-http", a, b, env=env)
    elif client == "regctl":
        host = src.split("/", 1)[0]
        clients.run("regctl", "registry", "set", "--tls", "disabled", host, env=env)
        clients.run("regctl", "image", "copy", "--digest-tags", src, dst, env=env)
    else:
        clients.run("skopeo-sigstore", *_skopeo_setup(tmp), "copy", "--src-tls-verify=false",
                    "--dest-tls-verify=false", "--preserve-digests", f"docker://{src}",
                    f"docker://{dst}", env=env)


@pytest.mark.parametrize("client", ["crane", "oras", "regctl", "skopeo-sigstore"])
def test_copies_verify_under_a_remap_rule(client: str, capsys: pytest.CaptureFixture[str],
                                          registry: Registryd, tmp_path: Path,
                                          publisher: keys.KeyInfo) -> None:
    clients.tool(client)
    env = clients.client_env(tmp_path)
    src = f"{registry.host}/org-{client}/demo:1.0.0"
    dst = f"{registry.host}/mirror/org-{client}/demo:1.0.0"
    trust.add_trust(f"{registry.host}/org-{client}/**", publisher.public_path)
    digest = _push_signed(capsys, tmp_path, src)
    _copy(client, src, dst, digest, tmp_path, env)
    # the copy keeps the digest; without a remap rule its signature is for another repository
    trust.add_trust(f"{registry.host}/mirror/**", publisher.public_path)
    r = ebpm(capsys, "pull", dst)
    assert r.code != 0
    assert "signed for another repository" in r.err
    assert f"claims {registry.host}/org-{client}/demo" in r.err
    assert f"expects localhost:{registry.host.split(':')[1]}/mirror/org-{client}/demo" in r.err
    # a remap rule verifies the mirror as the original
    policy = Path(trust.user_policy_path())
    mirror, origin = f"{registry.host}/mirror/org-{client}", f"{registry.host}/org-{client}"
    policy.write_text(policy.read_text() + f"""
[[trust]]
scope = "{mirror}/**"
keys = ["{publisher.public_path}"]
remap = {{ prefix = "{mirror}", signed_prefix = "{origin}" }}
""")
    r = ebpm(capsys, "pull", dst)
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", dst)
    assert r.code == 0, r.err
    assert f"{digest}: verified" in r.out


def test_loopback_spellings_and_digest_rule(capsys: pytest.CaptureFixture[str],
                                            registry: Registryd, tmp_path: Path,
                                            publisher: keys.KeyInfo) -> None:
    port = registry.host.split(":")[1]
    trust.add_trust("127.0.0.1:*/**", publisher.public_path)
    trust.add_trust("localhost:*/**", publisher.public_path)
    digest = _push_signed(capsys, tmp_path, f"{registry.host}/loop/demo:1.0.0")
    r = ebpm(capsys, "pull", f"localhost:{port}/loop/demo:1.0.0")
    assert r.code == 0, r.err
    # crane copies the package and signature to another repository: refused by repository,
    # accepted under a digest-only rule (cosign's behaviour)
    env = clients.client_env(tmp_path)
    clients.tool("crane")
    _copy("crane", f"{registry.host}/loop/demo:1.0.0", f"{registry.host}/else/demo:1.0.0",
          digest, tmp_path, env)
    r = ebpm(capsys, "pull", f"{registry.host}/else/demo:1.0.0")
    assert r.code != 0 and "signed for another repository" in r.err
    policy = Path(trust.user_policy_path())
    policy.write_text(policy.read_text() + f"""
[[trust]]
scope = "127.0.0.1:{port}/else/**"
keys = ["{publisher.public_path}"]
signed_identity = "match-digest"
""")
    r = ebpm(capsys, "pull", f"{registry.host}/else/demo:1.0.0")
    assert r.code == 0, r.err


def test_trust_list_shows_identity_rules(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    import json

    from ebpm import config

    info = keys.generate("k")
    root = Path(config.config_dir()) / "sigstore" / "trusted_root.json"
    root.parent.mkdir(parents=True)
    root.write_text("{}")
    Path(trust.user_policy_path()).write_text(f"""
[[alias]]
names = ["a.example:5000", "b.example:5000"]

[[trust]]
scope = "localhost:5000/mirror/**"
keys = ["{info.public_path}"]
remap = {{ prefix = "localhost:5000/mirror", signed_prefix = "ghcr.io/org" }}

[[trust]]
scope = "ghcr.io/bpfman/**"
keyless = [{{ identity_regexp = 'https://github\\.com/bpfman/.*', issuer = "https://token" }}]
""")
    r = ebpm(capsys, "trust", "list")
    assert r.code == 0, r.err
    assert "signed as ghcr.io/org (remap of localhost:5000/mirror)" in r.out
    assert "keyless ~https://github\\.com/bpfman/.* (issuer https://token)" in r.out
    assert "alias: a.example:5000 = b.example:5000" in r.out
    doc = json.loads(ebpm(capsys, "trust", "list", "--json").out)
    assert doc["aliases"] == [["a.example:5000", "b.example:5000"]]
    assert doc["rules"][0]["remap"] == {"prefix": "localhost:5000/mirror",
                                        "signed_prefix": "ghcr.io/org"}
    assert doc["rules"][1]["keyless"][0]["issuer"] == "https://token"
    assert doc["rules"][1]["trusted_root"] == str(root)
    # a changed trusted root changes the fingerprint (cached verifications check again)
    root.write_text('{"changed": true}')
    assert json.loads(ebpm(capsys, "trust", "list", "--json").out)["fingerprint"] != (
        doc["fingerprint"])


# -- scopes: the registry part spelled as identities are --------------------------------------


def test_scope_registry_normalized(tmp_path: Path) -> None:
    info = keys.generate("k")
    path = tmp_path / "p" / "policy.toml"
    path.parent.mkdir()
    path.write_text(f"""
[[alias]]
names = ["registry.internal:5000", "10.1.2.3:5000"]

[[trust]]
scope = "Localhost:5000/**"
keys = ["{info.public_path}"]

[[trust]]
scope = "registry.internal:5000/tools/*"
keys = ["{info.public_path}"]

[[trust]]
scope = "docker.io/*"
keys = ["{info.public_path}"]
""")
    rules, aliases = trust._parse(path.read_text(), path)
    policy = trust.Policy(rules, (path,), aliases)
    for name in ("127.0.0.1:5000/x", "localhost:5000/a/b", "[::1]:5000/x", "127.0.0.2:5000/x"):
        assert policy.rule_for(name).scope == "Localhost:5000/**", name
    assert policy.rule_for("127.0.0.1:5001/x").scope == "**"  # another port: another registry
    assert policy.rule_for("10.1.2.3:5000/tools/x").scope == "registry.internal:5000/tools/*"
    assert policy.rule_for("10.1.2.4:5000/tools/x").scope == "**"
    for name in ("docker.io/busybox", "index.docker.io/library/busybox",
                 "registry-1.docker.io/busybox"):
        assert policy.rule_for(name).scope == "docker.io/*", name
    # two spellings of one registry in one file tie: refused, naming both lines
    path.write_text(f"""
[[trust]]
scope = "localhost:5000/**"
keys = ["{info.public_path}"]

[[trust]]
scope = "127.0.0.1:5000/**"
keys = ["{info.public_path}"]
""")
    with pytest.raises(PolicyError, match="lines 2 .* and 6 .* are equally specific"):
        trust._parse(path.read_text(), path)


def test_key_generate_trust_localhost_covers_127(capsys: pytest.CaptureFixture[str],
                                                 registry: Registryd, hello_object: Path) -> None:
    """Issue 11 item 4: `key generate --trust 'localhost:PORT/**'`, then a push --sign to
    127.0.0.1:PORT (as `ebpm registry up` prints it): run and verify accept it."""
    import json

    port = registry.host.split(":")[1]
    assert registry.host.startswith("127.0.0.1:")
    r = ebpm(capsys, "key", "generate", "--trust", f"localhost:{port}/**")
    assert r.code == 0, r.err
    assert f"trusted for localhost:{port}/**" in r.out
    ref = f"{registry.host}/scope/hello:1.0.0"
    r = ebpm(capsys, "push", "--sign", str(hello_object), ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "run", ref, "--duration", "0.1")
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", "--json", ref)
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["status"] == "verified"
    assert result["rule"].startswith(f"localhost:{port}/** (")
    # the same registry spelled `Localhost`: the same rule
    r = ebpm(capsys, "run", f"Localhost:{port}/scope/hello:1.0.0", "--duration", "0.1")
    assert r.code == 0, r.err
