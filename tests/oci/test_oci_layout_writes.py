"""What a cold signed `ebpm pull` creates and fsyncs in the store, counted (issue 18: creating a
file is the costliest thing a store write does on some file systems, an fsync the slowest).
A count, not a time: a change that creates or flushes more fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ebpm.transfer.push import push
from ebpm.trust import keys
from ebpm.trust import policy as trust
from tests.registryd import Registryd

_COUNTING = """
import os, sys
created, made, synced = [], [], []

def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)) and isinstance(args[2], int) \\
            and args[2] & os.O_CREAT:
        created.append(os.fsdecode(args[0]))
    if event == "os.mkdir":
        made.append(os.fsdecode(args[0]))

sys.addaudithook(audit)
fsync = os.fsync
def counting(fd):
    synced.append(os.readlink(f"/proc/self/fd/{fd}"))
    fsync(fd)
os.fsync = counting
from ebpm.cli import main
code = main(sys.argv[1:])
for what, paths in (("created", created), ("mkdir", made), ("fsync", synced)):
    print("\\n".join(f"{what}: {p}" for p in paths), file=sys.stderr)
sys.exit(code or 0)
"""


def _counted(args: list[str], home: Path) -> dict[str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", _COUNTING, *args], capture_output=True,
                          text=True, env=dict(os.environ, EBPM_HOME=str(home)))
    assert proc.returncode == 0, proc.stderr[-1500:]
    out: dict[str, list[str]] = {"created": [], "mkdir": [], "fsync": []}
    for line in proc.stderr.splitlines():
        what, _, path = line.partition(": ")
        if what in out and path.startswith(str(home)):
            out[what].append(path.removeprefix(str(home)).removeprefix("/") or ".")
    return out


def test_a_cold_signed_pull_creates_and_fsyncs_what_the_store_keeps(
        registry: Registryd, hello_object: Path, tmp_path: Path) -> None:
    """Into an empty store: the package's 3 blobs and its signature manifest (staged, then
    renamed into place), `oci-layout` and the index (to temp names, renamed); the
    verification record goes in the index, and the signature's config and payload are made
    from its manifest when read (no file of their own). 9 fsyncs: the 4 blobs and
    `oci-layout`, their 2 directories, then the index and its directory."""
    key = keys.generate("writes")
    trust.add_trust(f"{registry.host}/**", key.public_path)
    ref = f"{registry.host}/writes/hello:1.0.0"
    push(hello_object, ref, sign_key="writes")
    home = tmp_path / "store"
    counted = _counted(["pull", ref], home)
    blobs = sorted(p.name for p in (home / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4
    kept = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert kept == sorted([*(f"blobs/sha256/{b}" for b in blobs), "ebpm/lock", "index.json",
                           "oci-layout"])
    created = [os.path.basename(p) for p in counted["created"] if p != "ebpm/lock"]
    staged = sorted(b for b in created if b in blobs)
    assert staged == blobs, created
    assert len(created) == 4 + 2, created  # + oci-layout's and the index's temp names
    assert [p for p in counted["created"] if p.startswith("ebpm/verified")] == []
    # the store's 4 directories and one staging directory (removed at the end); no other
    made = {p.split("-")[0] for p in counted["mkdir"]}  # (makedirs tries some twice)
    assert made == {".", "blobs", "blobs/sha256", "ebpm", "ebpm/staging"}, counted["mkdir"]
    synced = counted["fsync"]
    assert sorted(p for p in synced if p.startswith("blobs/sha256/")) == [
        f"blobs/sha256/{b}" for b in blobs]
    assert len(synced) == 9, synced


def test_a_payload_a_referrer_names_too_stays_a_file(
        registry: Registryd, hello_object: Path, tmp_path: Path) -> None:
    """Signed in both forms (the legacy `.sig` by one key, an OCI 1.1 referrer by another) the
    two carry the same payload and config: they are kept as files (the referrer outlives the
    legacy tag). The check reads them offline with the legacy tag gone too."""
    from ebpm.access import parse_reference, registry_for
    from ebpm.oci.layout import Store
    from ebpm.oci.signature import signature_tag
    from ebpm.transfer.pull import pull
    from ebpm.trust.sign import sign
    from ebpm.trust.verification import enforce

    key = keys.generate("legacy")
    trust.add_trust(f"{registry.host}/**", key.public_path)
    ref = f"{registry.host}/writes/both:1.0.0"
    push(hello_object, ref, sign_key="legacy")
    reference = parse_reference(ref)
    _, _, digest = registry_for(registry.host).get_manifest(reference.repository, "1.0.0")
    other = keys.generate("referrer")
    sign(reference, digest, "referrer", referrers=True)
    store = Store(tmp_path / "store")
    package = pull(ref, store=store, every_signature=True)
    assert package.verification is not None and package.verification.verified
    legacy = store.resolve(f"{reference.name}:{signature_tag(digest)}")
    assert legacy is not None
    _, manifest = store.read_manifest(legacy.digest)
    (payload,) = manifest.layers
    assert os.path.exists(store.blob_path(payload.digest))
    assert os.path.exists(store.blob_path(manifest.config.digest))
    store.untag(f"{reference.name}:{signature_tag(digest)}")
    Path(trust.user_policy_path()).unlink()  # only the referrer's key is trusted now
    trust.add_trust(f"{registry.host}/**", other.public_path)
    assert enforce(Store(store.root), reference, digest, fresh=True).verified
