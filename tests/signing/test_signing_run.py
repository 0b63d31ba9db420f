"""`ebpm run` of a registry package: a signed one is verified and runs (into a clean store, then
offline from it); an unsigned or untrusted one is refused before anything reaches the kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.oci.layout import Store
from ebpm.trust import keys
from ebpm.trust import policy as trust
from tests.cli import ebpm
from tests.registryd import Registryd


def test_run_signed_then_offline_and_refuse_unsigned(
        capsys: pytest.CaptureFixture[str], registry: Registryd, hello_object: Path) -> None:
    good = keys.generate("good")
    keys.generate("evil")
    trust.add_trust(f"{registry.host}/**", good.public_path)
    signed, unsigned, evil = (f"{registry.host}/sigrun/{n}:1.0.0"
                              for n in ("signed", "unsigned", "evil"))
    assert ebpm(capsys, "push", "--sign", "--key", "good", str(hello_object), signed).code == 0
    assert ebpm(capsys, "push", str(hello_object), unsigned).code == 0
    assert ebpm(capsys, "push", "--sign", "--key", "evil", str(hello_object), evil).code == 0

    r = ebpm(capsys, "run", unsigned, "--duration", "0.1")
    assert r.code == 1 and "not signed" in r.err, r.err
    r = ebpm(capsys, "run", evil, "--duration", "0.1")
    assert r.code == 1 and "not made by a key trusted" in r.err, r.err
    # refused in the pull, before the loader: nothing named in the store, nothing verified
    assert Store().resolve(unsigned) is None and Store().resolve(evil) is None
    assert not (Path(Store().state_dir) / "verified").exists() or not list(
        (Path(Store().state_dir) / "verified").iterdir())

    r = ebpm(capsys, "run", signed, "--duration", "0.1")
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "run", signed, "--duration", "0.1")
    assert r.code == 0, r.err
