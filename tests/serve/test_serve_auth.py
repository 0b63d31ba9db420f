"""Who may talk to the agent, and what bad requests get: the Unix socket's mode and peer
check, the bearer token and TLS on TCP, size limits, malformed JSON, the OpenAPI document."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.errors import UsageError
from ebpm.serve.client import AgentClient, AgentError
from tests.cli import ebpm
from tests.serve.conftest import Agent, start_agent

TOKEN = "s3cret-token-0123456789abcdef"


def _raw(path: Path, request: bytes) -> bytes:
    """Send bytes over the Unix socket, read the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def plain_agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    yield a
    assert a.stop() == 0, a.output()


@pytest.fixture
def tcp_agent(tmp_path: Path) -> Iterator[Agent]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    a = start_agent(tmp_path, "--listen", "127.0.0.1:0", "--token-file", str(token_file),
                    wait_tcp="http://")
    a.tcp = re.search(r"listening on (http://\S+)", a.output()).group(1)  # type: ignore[union-attr]
    a.token = TOKEN
    yield a
    assert a.stop() == 0, a.output()


def test_unix_socket_is_private(plain_agent: Agent) -> None:
    mode = stat.S_IMODE(plain_agent.socket.stat().st_mode)
    assert mode == 0o600
    assert plain_agent.client().call("GET", "/healthz")["status"] == "ok"


def test_peer_credentials_are_checked() -> None:
    if os.geteuid() != 0:
        pytest.skip("feature probe: connecting as another user needs root")
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="ebpm-peer-"))
    public.chmod(0o755)  # so that another user reaches the socket at all
    plain_agent = start_agent(public)
    try:
        _peer_refused(plain_agent)
    finally:
        assert plain_agent.stop() == 0, plain_agent.output()
        shutil.rmtree(public, ignore_errors=True)


def _peer_refused(plain_agent: Agent) -> None:
    os.chmod(plain_agent.socket, 0o666)  # even when the mode lets them in, the peer check holds
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.close(read_end)
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                answer = _raw(plain_agent.socket, b"GET /v1/programs HTTP/1.1\r\nHost: x\r\n\r\n")
            except (ConnectionResetError, BrokenPipeError):  # closed before it was read
                answer = b""
            os.write(write_end, answer[:200] or b"<closed>")
        except BaseException as err:  # noqa: BLE001
            os.write(write_end, f"<error {err}>".encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as r:
        seen = r.read()
    os.waitpid(child, 0)
    assert seen == b"<closed>", seen
    assert "refused a connection from uid 65534" in plain_agent.output()


def test_tcp_needs_the_token_and_nothing_happens_without_it(tcp_agent: Agent,
                                                            registry: object) -> None:
    url = tcp_agent.tcp
    body = {"ref": f"{registry.host}/serve/svcprobe:1.0.0", "allow_unsigned": True}  # type: ignore[attr-defined]
    for token in (None, "wrong-token-0123456789", TOKEN[:-1] + "X"):
        client = AgentClient(url, token=token)
        with pytest.raises(AgentError) as info:
            client.call("POST", "/v1/programs", body)
        assert info.value.status == 401
        with pytest.raises(AgentError):
            client.call("GET", "/v1/programs")
        with pytest.raises(AgentError):
            client.text("/metrics")
    assert tcp_agent.client().call("GET", "/v1/programs") == {"programs": []}
    assert "started" not in tcp_agent.output()
    good = AgentClient(url, token=TOKEN)
    assert good.call("GET", "/v1/programs") == {"programs": []}
    assert AgentClient(url).call("GET", "/healthz")["status"] == "ok"  # the one open path


def test_a_client_reaches_an_agent_by_name_without_the_idna_codec(tcp_agent: Agent) -> None:
    """An agent's address by host name (`localhost`): the name goes to the resolver as bytes,
    so the client's process imports no encodings.idna (with stringprep and unicodedata, ~1.6
    ms of `ebpm run --agent`'s start-up; ebpm.oci.http.connect, as a pull's requests)."""
    import subprocess
    import sys

    url = tcp_agent.tcp.replace("127.0.0.1", "localhost")
    code = ("import sys\nfrom ebpm.serve.client import AgentClient\n"
            f"print(AgentClient({url!r}).call('GET', '/healthz')['status'], "
            "'encodings.idna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["ok", "False"], out.stderr


def test_401_says_bearer(tcp_agent: Agent) -> None:
    host, port = tcp_agent.tcp.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /v1/programs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert _status(answer) == 401
    assert b'www-authenticate: Bearer realm="ebpm"' in answer.lower().replace(
        b"bearer", b"Bearer")


def test_tls_on_tcp(tmp_path: Path) -> None:
    from tests.oci.conftest import _cert, _new_key, _pem_cert, _pem_key

    ca_key, key = _new_key(), _new_key()
    ca = _cert(ca_key, "agent test CA", ca_key, "agent test CA", ca=True)
    leaf = _cert(key, "127.0.0.1", ca_key, "agent test CA", ca=False, san_ip="127.0.0.1")
    (tmp_path / "ca.pem").write_bytes(_pem_cert(ca))
    (tmp_path / "cert.pem").write_bytes(_pem_cert(leaf))
    (tmp_path / "key.pem").write_bytes(_pem_key(key))
    (tmp_path / "token").write_text(TOKEN)
    a = start_agent(tmp_path, "--listen", "127.0.0.1:0", "--token-file", str(tmp_path / "token"),
                    "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key",
                    str(tmp_path / "key.pem"), wait_tcp="https://")
    try:
        url = re.search(r"listening on (https://\S+)", a.output()).group(1)  # type: ignore[union-attr]
        client = AgentClient(url, token=TOKEN, ca_file=str(tmp_path / "ca.pem"))
        assert client.call("GET", "/v1/programs") == {"programs": []}
        from ebpm.errors import UnreachableError

        with pytest.raises(UnreachableError):  # plain http to the TLS port
            AgentClient(url.replace("https://", "http://"), token=TOKEN).call(
                "GET", "/v1/programs")
    finally:
        assert a.stop() == 0, a.output()


def test_tcp_listen_rules(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    sock = str(tmp_path / "a.sock")
    r = ebpm(capsys, "serve", "--socket", sock, "--listen", "127.0.0.1:0")
    assert r.code == 2 and "TCP needs a bearer token" in r.err
    r = ebpm(capsys, "serve", "--socket", sock, "--listen", "0.0.0.0:0", "--token-file",
             str(tmp_path / "token"))
    assert r.code == 2 and "a non-loopback address needs TLS" in r.err
    (tmp_path / "short").write_text("abc")
    r = ebpm(capsys, "serve", "--socket", sock, "--listen", "127.0.0.1:0", "--token-file",
             str(tmp_path / "short"))
    assert r.code == 2 and "too short" in r.err
    assert not Path(sock).exists()


def test_bad_requests_get_4xx_with_a_message(plain_agent: Agent) -> None:
    sock = plain_agent.socket

    def post(body: bytes, extra: bytes = b"") -> tuple[int, dict]:  # type: ignore[type-arg]
        head = (b"POST /v1/programs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\n" + extra)
        if b"chunked" not in extra:
            head += b"Content-Length: %d\r\n" % len(body)
        answer = _raw(sock, head + b"\r\n" + body)
        return _status(answer), json.loads(answer.split(b"\r\n\r\n", 1)[1] or b"{}")

    code, doc = post(b'{"ref": ')
    assert code == 400 and doc["error"].startswith("malformed JSON")
    code, doc = post(b'["x"]')
    assert code == 400 and "JSON object" in doc["error"]
    code, doc = post(b'{"ref": "x:1.0.0", "rm": true}')
    assert code == 400 and "unknown field(s): rm" in doc["error"]
    code, doc = post(b'{"args": []}')
    assert code == 400 and "ref" in doc["error"]
    code, doc = post(b'{"ref": "x:1.0.0", "args": "--pid 1"}')
    assert code == 400 and "args" in doc["error"]
    code, doc = post(b'{"ref": "' + b"a" * 70000 + b'"}')
    assert code == 413 and "too large" in doc["error"]
    big = b"x" * 70000
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)
    code, doc = post(chunked, b"Transfer-Encoding: chunked\r\n")
    assert code == 413
    code, doc = post(b'{"ref": "/etc/passwd.o"}')
    assert code == 400 and "registry packages only" in doc["error"]
    answer = _raw(sock, b"GET /v2/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert _status(answer) == 404 and b"no such endpoint" in answer
    answer = _raw(sock, b"PATCH /v1/programs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Length: 0\r\n\r\n")
    assert _status(answer) == 405
    with pytest.raises(Exception) as info:
        plain_agent.client().call("GET", "/v1/programs/feedbeef/maps")
    assert "no such program" in str(info.value)
    assert plain_agent.client().call("GET", "/healthz")["programs"] == 0  # still serving


def test_openapi_document_is_valid_and_complete(plain_agent: Agent) -> None:
    from openapi_spec_validator import validate

    from ebpm.serve.app import build_app
    from ebpm.serve.registry import ProgramRegistry

    doc = plain_agent.client().call("GET", "/openapi.json")
    validate(doc)
    served = {(r.path, m) for r in build_app(ProgramRegistry()).routes  # type: ignore[attr-defined]
              for m in r.methods if m != "HEAD"}
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops
                  if m != "parameters"}
    assert served == documented


def test_client_without_an_agent_says_how_to_start_one(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    r = ebpm(capsys, "ps", "--agent", str(tmp_path / "none.sock"))
    assert r.code == 1 and "agent unix:" in r.err and "ebpm serve" in r.err
    with pytest.raises(UsageError):
        AgentClient("not an address")
