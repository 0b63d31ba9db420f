"""The client against a tiny loopback HTTP server that does what a real registry never does
here: paginates with Link, lies about content, truncates, redirects to another host, fails."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from ebpm.errors import (
    AuthError,
    DigestMismatchError,
    RegistryError,
    TooLargeError,
    UnreachableError,
)
from ebpm.oci.auth import Credentials
from ebpm.oci.model import MANIFEST_V1, sha256_digest
from ebpm.oci.remote import Registry

BLOB = b"the real content of a blob " * 40
DIGEST = sha256_digest(BLOB)


def test_tags_follow_link_pagination(tiny_server) -> None:
    def route(h, seen):
        pages = {  # a relative link, then an absolute one, then the end
            "/v2/r/tags/list": (["b", "a"], '</v2/r/tags/list?last=a&n=2>; rel="next"'),
            "/v2/r/tags/list?last=a&n=2": (
                ["1.0.0", "0.9.0"], f'<{server.url}/v2/r/tags/list?last=z>; rel="next"'),
            "/v2/r/tags/list?last=z": (["z"], ""),
        }
        tags, link = pages[seen.path]
        headers = {"Content-Type": "application/json"}
        if link:
            headers["Link"] = link
        h.reply(h, 200, json.dumps({"name": "r", "tags": tags}).encode(), headers)

    server = tiny_server(route)
    assert Registry(server.host).list_tags("r") == ["b", "a", "1.0.0", "0.9.0", "z"]
    assert len(server.seen) == 3


def test_truncated_blob_download(tiny_server) -> None:
    server = tiny_server(lambda h, seen: h.reply(h, 200, BLOB[:500], length=len(BLOB)))
    with pytest.raises(DigestMismatchError, match="truncated") as caught:
        Registry(server.host, retries=0).get_blob("r", DIGEST, size=len(BLOB))
    assert caught.value.message.endswith(  # in words, not an exception's class name
        "download truncated: the server closed the connection mid-answer")


def test_blob_with_other_content_is_refused(tiny_server) -> None:
    other = bytes(reversed(BLOB))
    server = tiny_server(lambda h, seen: h.reply(h, 200, other))
    with pytest.raises(DigestMismatchError, match=f"want {DIGEST}"):
        Registry(server.host).get_blob("r", DIGEST, size=len(BLOB))
    with pytest.raises(DigestMismatchError, match="announces"):
        Registry(server.host).get_blob("r", DIGEST, size=10)


def test_manifest_digest_checks(tiny_server) -> None:
    data = b'{"schemaVersion":2}'
    lie = sha256_digest(b"something else")

    def route(h, seen):
        h.reply(h, 200, data, {"Content-Type": MANIFEST_V1, "Docker-Content-Digest": lie})

    server = tiny_server(route)
    client = Registry(server.host)
    with pytest.raises(DigestMismatchError, match="registry says"):
        client.get_manifest("r", "1.0.0")
    with pytest.raises(DigestMismatchError, match=f"want {lie}"):
        client.get_manifest("r", lie)
    assert all(s.headers.get("Accept", "").startswith(MANIFEST_V1) for s in server.seen)


def test_oversized_manifest_is_not_read(tiny_server) -> None:
    server = tiny_server(lambda h, seen: h.reply(h, 200, b"{" + b" " * 5000 + b"}",
                                                 {"Content-Type": MANIFEST_V1}))
    with pytest.raises(TooLargeError):
        Registry(server.host).get_manifest("r", "1.0.0", max_size=1000)


def test_cross_host_redirect_drops_authorization(tiny_server) -> None:
    storage = tiny_server(lambda h, seen: h.reply(h, 200, BLOB))

    def registry(h, seen):
        if "Authorization" not in seen.headers:
            h.reply(h, 401, b"", {"WWW-Authenticate": 'Basic realm="test"'})
        elif seen.path.startswith("/v2/r/blobs/"):
            h.reply(h, 307, b"", {"Location": f"{storage.url}/blob?sig=abc"})
        else:
            h.reply(h, 200, b"{}")

    server = tiny_server(registry)
    client = Registry(server.host, credentials=Credentials("alice", "pw"))
    assert client.get_blob("r", DIGEST, size=len(BLOB)) == BLOB
    assert server.seen[-1].headers["Authorization"].startswith("Basic ")
    assert [s.path for s in storage.seen] == ["/blob?sig=abc"]
    assert "Authorization" not in storage.seen[0].headers


def test_retries_on_5xx_then_succeeds(tiny_server) -> None:
    def route(h, seen):
        if len(server.seen) <= 2:
            h.reply(h, 503, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')
        else:
            h.reply(h, 200, BLOB)

    server = tiny_server(route)
    assert Registry(server.host, retries=2).get_blob("r", DIGEST) == BLOB
    assert len(server.seen) == 3


def test_gives_up_after_bounded_retries_and_keeps_the_spec_error(tiny_server) -> None:
    body = b'{"errors":[{"code":"UNAVAILABLE","message":"down for maintenance"}]}'
    server = tiny_server(lambda h, seen: h.reply(h, 503, body))
    with pytest.raises(RegistryError) as info:
        Registry(server.host, retries=1).blob_exists("r", DIGEST)
    assert len(server.seen) == 2
    assert info.value.status == 503


def test_no_retry_on_4xx(tiny_server) -> None:
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    server = tiny_server(lambda h, seen: h.reply(h, 403, body))
    with pytest.raises(AuthError) as info:
        Registry(server.host).get_manifest("r", "1.0.0")
    assert len(server.seen) == 1
    assert info.value.code == "DENIED" and "DENIED: requested access" in str(info.value)


def test_upload_location_query_and_redacted_errors(tiny_server) -> None:
    def route(h, seen):
        if seen.method == "HEAD":
            h.reply(h, 404)
        elif seen.method == "POST":
            h.reply(h, 202, b"", {"Location": f"{server.url}/v2/r/blobs/uploads/u1?_state=SECRET"})
        else:
            h.reply(h, 400, b'{"errors":[{"code":"DIGEST_INVALID","message":"bad"}]}')

    server = tiny_server(route)
    client = Registry(server.host, credentials=Credentials("alice", "hunter2"))
    with pytest.raises(RegistryError) as info:
        client.push_blob("r", DIGEST, BLOB)
    put = server.seen[-1]
    assert put.method == "PUT" and put.body == BLOB
    assert parse_qs(urlsplit(put.path).query) == {"_state": ["SECRET"], "digest": [DIGEST]}
    text = f"{info.value} {info.value.hint} {info.value!r}"
    assert "SECRET" not in text and "hunter2" not in text
    assert info.value.code == "DIGEST_INVALID"


def test_expired_bearer_token_is_refreshed_once(tiny_server) -> None:
    used: dict[str, int] = {}
    issued: list[str] = []

    def route(h, seen):
        challenge = (f'Bearer realm="{server.url}/token",service="svc",'
                     'scope="repository:r:pull"')
        if seen.path.startswith("/token"):
            issued.append(seen.path)
            token = f"t{len(issued)}"
            h.reply(h, 200, json.dumps({"token": token, "expires_in": 300}).encode())
            return
        token = seen.headers.get("Authorization", "").removeprefix("Bearer ")
        used[token] = used.get(token, 0) + 1
        if token == "t2" or (token == "t1" and used[token] == 1):
            h.reply(h, 200, BLOB)
        else:  # no token yet, or t1 has expired
            h.reply(h, 401, b"", {"WWW-Authenticate": challenge})

    server = tiny_server(route)
    client = Registry(server.host)
    assert client.get_blob("r", DIGEST) == BLOB
    assert client.get_blob("r", DIGEST) == BLOB
    assert len(issued) == 2 and used == {"": 1, "t1": 2, "t2": 1}
    query = parse_qs(urlsplit(issued[0]).query)
    assert query == {"service": ["svc"], "scope": ["repository:r:pull"]}


def test_429_is_retried_honouring_a_short_retry_after(tiny_server) -> None:
    def route(h, seen):
        if len(server.seen) == 1:
            h.reply(h, 429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}',
                    {"Retry-After": "0"})
        else:
            h.reply(h, 200, b"", {"Content-Length": "0"})

    server = tiny_server(route)
    assert Registry(server.host).blob_exists("r", DIGEST) is True
    assert len(server.seen) == 2


def test_unknown_host_is_unreachable_without_retries() -> None:
    with pytest.raises(UnreachableError, match="unknown host"):
        Registry("no-such-registry.invalid", insecure=True).ping()


@pytest.mark.parametrize("body, why", [
    (b"[1, 2]", 'not an object with a "tags" list'),
    (b'{"name": "r", "tags": "1.0.0"}', 'not an object with a "tags" list'),
    (b'{"name": "r", "tags": [1, 2, {"a": 1}]}', "1 is not a tag"),
    (b'{"name": "r", "tags": ["1.0.0", "\\u001b[2J"]}', '"\\u001b[2J" is not a tag'),
    (b"<html>", "not JSON"),
])
def test_a_malformed_tag_list_is_an_error(tiny_server, capsys, body: bytes, why: str) -> None:
    """Was an empty list, exit 0 (`--json`: `[]`): non-strings were dropped silently."""
    from tests.cli import ebpm

    server = tiny_server(lambda h, seen: h.reply(h, 200, body))
    with pytest.raises(RegistryError, match=re.escape(f"malformed tag list: {why}")):
        Registry(server.host).list_tags("r")
    for args in ((), ("--json",)):
        r = ebpm(capsys, "tags", *args, f"{server.host}/r")
        assert (r.code, r.out) == (1, ""), r
        assert r.err.splitlines()[0] == f"error: tags of {server.host}/r: malformed tag list: {why}"
        assert r.err.splitlines()[1].startswith("hint: ")


def test_an_empty_tag_list_says_so_on_stderr(tiny_server, capsys) -> None:
    from tests.cli import ebpm

    server = tiny_server(lambda h, seen: h.reply(h, 200, b'{"name": "r", "tags": null}'))
    r = ebpm(capsys, "tags", f"{server.host}/r")
    assert (r.code, r.out, r.err) == (0, "", f"no tags in {server.host}/r\n")
    r = ebpm(capsys, "tags", "--json", f"{server.host}/r")
    assert (r.code, r.out, r.err) == (0, "[]\n", "")
