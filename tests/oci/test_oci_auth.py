"""Auth: challenge and scope parsing, credential stores (ebpm's own, docker's config, credential
helpers as real subprocesses), and a real htpasswd registry."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from ebpm.errors import AuthError
from ebpm.oci.auth import (
    Credentials,
    Scope,
    auth_file,
    lookup,
    merge_scopes,
    parse_challenges,
    parse_scopes,
    remove_credentials,
    scope_string,
    store_credentials,
)
from ebpm.oci.model import sha256_digest
from ebpm.oci.remote import Registry, check_credentials
from tests.oci.conftest import PASSWORD, USER
from tests.registryd import Registryd


def test_parse_bearer_and_basic_challenges() -> None:
    header = ('Bearer realm="https://ghcr.io/token",service="ghcr.io",'
              'scope="repository:a/b:push,pull repository:c:pull",error="insufficient_scope", '
              'Basic realm="x \\"quoted\\""')
    bearer, basic = parse_challenges(header)
    assert bearer.scheme == "bearer" and bearer.realm == "https://ghcr.io/token"
    assert bearer.service == "ghcr.io" and bearer.error == "insufficient_scope"
    assert bearer.scopes == (Scope("repository", "a/b", frozenset({"pull", "push"})),
                             Scope("repository", "c", frozenset({"pull"})))
    assert basic.scheme == "basic" and basic.realm == 'x "quoted"'
    assert parse_challenges("Basic") == [parse_challenges("basic")[0]]


def test_scopes_compare_as_sets() -> None:
    a = parse_scopes("repository:x:pull,push")
    b = parse_scopes("repository:x:push,pull")
    assert a == b and scope_string(a) == scope_string(b) == "repository:x:pull,push"
    port = parse_scopes("repository:localhost:5000/x:pull")[0]
    assert (port.name, port.actions) == ("localhost:5000/x", frozenset({"pull"}))
    merged = merge_scopes(parse_scopes("repository:x:pull"), parse_scopes("repository:x:push"))
    assert merged == a
    assert Scope("registry", "catalog", frozenset({"*"})).covers(
        Scope("registry", "catalog", frozenset({"read"})))


def test_credentials_never_show_secrets() -> None:
    creds = Credentials("alice", "hunter2", "tok-abc", source="test")
    assert "hunter2" not in repr(creds) and "tok-abc" not in repr(creds)
    assert "hunter2" not in str(creds)


def test_store_is_0600_and_lookup_prefers_it(ebpm_env: Path) -> None:
    docker = Path(os.environ["DOCKER_CONFIG"])
    docker.mkdir(parents=True)
    encoded = base64.b64encode(b"bob:docker-pw").decode()
    (docker / "config.json").write_text(json.dumps({"auths": {"https://r.example:5000/v1/": {
        "auth": encoded}}}))
    assert lookup("r.example:5000") == Credentials("bob", "docker-pw", source="docker config")
    path = store_credentials("r.example:5000", Credentials("alice", "own-pw"))
    assert path == auth_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert lookup("R.example:5000") == Credentials("alice", "own-pw", source="ebpm login")
    assert remove_credentials("r.example:5000") is True
    assert remove_credentials("r.example:5000") is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert lookup("r.example:5000").username == "bob"  # type: ignore[union-attr]
    assert lookup("other.example") is None


def test_docker_username_password_and_identity_token(ebpm_env: Path) -> None:
    docker = Path(os.environ["DOCKER_CONFIG"])
    docker.mkdir(parents=True)
    (docker / "config.json").write_text(json.dumps({"auths": {
        "a.example": {"username": "u", "password": "p"},
        "b.example": {"identitytoken": "refresh-me"},
    }}))
    assert lookup("a.example") == Credentials("u", "p", source="docker config")
    assert lookup("b.example").identity_token == "refresh-me"  # type: ignore[union-attr]


def _fake_helper(bin_dir: Path, name: str, answers: dict[str, dict[str, str]]) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    log = bin_dir / f"{name}.log"
    script.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 1\n'
        "read server\n"
        f'echo "$server" >> {log}\n'
        'case "$server" in\n'
        + "".join(f"  {host}) echo '{json.dumps(doc)}' ;;\n" for host, doc in answers.items())
        + "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return log


def test_cred_helpers_and_creds_store_run_as_subprocesses(
    ebpm_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    helper_log = _fake_helper(bin_dir, "fake", {
        "h.example": {"ServerURL": "h.example", "Username": "carol", "Secret": "helper-pw"},
        "t.example": {"ServerURL": "t.example", "Username": "<token>", "Secret": "id-tok"},
    })
    _fake_helper(bin_dir, "store", {
        "s.example": {"ServerURL": "s.example", "Username": "dave", "Secret": "store-pw"},
    })
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    docker = Path(os.environ["DOCKER_CONFIG"])
    docker.mkdir(parents=True)
    (docker / "config.json").write_text(json.dumps({
        "credHelpers": {"h.example": "fake", "t.example": "fake"},
        "credsStore": "store",
        "auths": {"s.example": {}},
    }))
    assert lookup("h.example") == Credentials("carol", "helper-pw", source="docker-credential-fake")
    token = lookup("t.example")
    assert token is not None and token.identity_token == "id-tok" and not token.username
    assert lookup("s.example") == Credentials("dave", "store-pw", source="docker-credential-store")
    assert lookup("nowhere.example") is None
    assert "h.example" in helper_log.read_text().split()


# -- a real registry with htpasswd --------------------------------------------------------------


def test_htpasswd_push_and_pull_with_credentials(htpasswd_registry: Registryd) -> None:
    data = b"basic auth blob"
    with Registry(htpasswd_registry.host, credentials=Credentials(USER, PASSWORD)) as client:
        client.ping()
        client.push_blob("auth/basic", sha256_digest(data), data)
        assert client.get_blob("auth/basic", sha256_digest(data)) == data


def test_htpasswd_credentials_from_the_store(htpasswd_registry: Registryd) -> None:
    store_credentials(htpasswd_registry.host, Credentials(USER, PASSWORD))
    Registry(htpasswd_registry.host).ping()  # looked up from auth.json


def test_htpasswd_wrong_credentials(htpasswd_registry: Registryd) -> None:
    wrong = Credentials(USER, "not-the-password")
    with pytest.raises(AuthError, match="wrong credentials") as info:
        check_credentials(htpasswd_registry.host, wrong)
    assert info.value.status == 401
    assert "not-the-password" not in f"{info.value} {info.value.hint}"


def test_htpasswd_anonymous_is_told_to_log_in(htpasswd_registry: Registryd) -> None:
    with pytest.raises(AuthError, match="authentication required") as info:
        Registry(htpasswd_registry.host).list_tags("auth/basic")
    assert info.value.hint and "ebpm login" in info.value.hint
