"""Registries with htpasswd, bearer tokens (a real JWT token server) and TLS (a test CA), and a
tiny loopback HTTP server for behaviour real registries never show (lies, redirects, Link)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.registryd import Registryd, start_registry

USER, PASSWORD = "alice", "s3cret-Pa55word"
PROXIED_NAME = "registry.proxied.test"  # a name only the test proxy resolves (to 127.0.0.1)
IDENTITY_TOKEN = "refresh-token-for-alice"
SERVICE, ISSUER = "ebpm-test-registry", "ebpm-test-issuer"


# -- a tiny HTTP server -------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


Route = Callable[[BaseHTTPRequestHandler, Seen], None]


@dataclass
class TinyServer:
    """A loopback HTTP server in a thread; `route(handler, seen)` writes each response."""

    route: Route
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> TinyServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, dict(self.headers.items()), body)
                outer.seen.append(seen)
                outer.route(self, seen)

            reply = staticmethod(globals()["reply"])  # routes call h.reply(h, status, ...)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)


def reply(
    h: BaseHTTPRequestHandler, status: int, body: bytes = b"",
    headers: dict[str, str] | None = None, *, length: int | None = None,
) -> None:
    """Write a response; `length` may lie about the body's size (then the connection closes)."""
    h.send_response(status)
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    if length is not None and length != len(body):
        h.send_header("Connection", "close")
        h.close_connection = True
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)
        h.wfile.flush()


@pytest.fixture
def tiny_server() -> Iterator[Callable[[Route], TinyServer]]:
    """Factory: start a TinyServer with a route; all are stopped after the test."""
    started: list[TinyServer] = []

    def make(route: Route) -> TinyServer:
        server = TinyServer(route).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


# -- keys and certificates ----------------------------------------------------------------------


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _cert(subject_key: Any, subject: str, issuer_key: Any, issuer: str, *, ca: bool,
          san_ip: str | None = None) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False), critical=True)
    if san_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip)),
                                         x509.DNSName(PROXIED_NAME)]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def libtrust_kid(public_key: Any) -> str:
    """distribution's key id: base32 of the first 30 bytes of sha256(DER SPKI), 12 groups of 4."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i:i + 4] for i in range(0, 48, 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_jwt(key: Any, claims: dict[str, Any]) -> str:
    """An ES256 JWT with a libtrust `kid` (the signature is JOSE r||s, not DER)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    header = {"typ": "JWT", "alg": "ES256", "kid": libtrust_kid(key.public_key())}
    signing_input = (_b64url(json.dumps(header).encode()) + "."
                     + _b64url(json.dumps(claims).encode()))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


# -- the registries -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registryd]:
    """A registry with basic auth: user alice (bcrypt entry made by `htpasswd -bB`)."""
    root = tmp_path_factory.mktemp("htpasswd-registry")
    path = root / "htpasswd"
    subprocess.run(["htpasswd", "-bBc", str(path), USER, PASSWORD], check=True,
                   capture_output=True)
    reg = start_registry(auth={"htpasswd": {"realm": "ebpm-test", "path": str(path)}})
    yield reg
    reg.stop()


@dataclass
class TokenService:
    """The token server of a registry with `auth: token`, and what it was asked."""

    registry: Registryd
    server: TinyServer
    issued: list[dict[str, Any]]  # one entry per token: user ('' anonymous) and granted access

    @property
    def host(self) -> str:
        return self.registry.host


def _token_route(key: Any, issued: list[dict[str, Any]]) -> Route:
    def route(h: BaseHTTPRequestHandler, seen: Seen) -> None:
        parts = urlsplit(seen.path)
        if parts.path != "/token":
            reply(h, 404)
            return
        query = parse_qs(parts.query)
        user = ""
        if seen.method == "POST":  # OAuth2 refresh-token grant (identity tokens)
            form = parse_qs(seen.body.decode())
            query = form
            if form.get("refresh_token", [""])[0] != IDENTITY_TOKEN:
                reply(h, 401, b'{"error":"invalid_grant"}')
                return
            user = USER
        else:
            auth = seen.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if (name, password) != (USER, PASSWORD):
                    reply(h, 401, b'{"details":"wrong credentials"}',
                          {"WWW-Authenticate": 'Basic realm="tokens"'})
                    return
                user = name
        access = []
        for item in " ".join(query.get("scope", [])).split():
            type_, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            granted = wanted if user else [a for a in wanted if a == "pull"]
            if granted:
                access.append({"type": type_, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user, "aud": query.get("service", [""])[0],
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        issued.append({"user": user, "access": access})
        token = make_jwt(key, claims)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300,
                           "issued_at": datetime.datetime.now(datetime.UTC).isoformat()})
        reply(h, 200, body.encode(), {"Content-Type": "application/json"})

    return route


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenService]:
    """A registry with `auth: token` and its JWT token server: alice gets what she asks for,
    anonymous callers get pull only."""
    root = tmp_path_factory.mktemp("token-registry")
    key = _new_key()
    bundle = root / "token-signer.pem"
    bundle.write_bytes(_pem_cert(_cert(key, "ebpm test token signer", key,
                                       "ebpm test token signer", ca=False)))
    issued: list[dict[str, Any]] = []
    server = TinyServer(_token_route(key, issued)).start()
    try:
        reg = start_registry(auth={"token": {
            "realm": f"{server.url}/token", "service": SERVICE, "issuer": ISSUER,
            "rootcertbundle": str(bundle),
        }})
    except BaseException:
        server.stop()
        raise
    yield TokenService(reg, server, issued)
    reg.stop()
    server.stop()


@dataclass
class TLSRegistry:
    registry: Registryd
    ca_file: str

    @property
    def host(self) -> str:
        return self.registry.host


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRegistry]:
    """A registry serving https with a certificate (SAN IP 127.0.0.1 and PROXIED_NAME) from a
    test CA."""
    root = tmp_path_factory.mktemp("tls-registry")
    ca_key, server_key = _new_key(), _new_key()
    ca = _cert(ca_key, "ebpm test CA", ca_key, "ebpm test CA", ca=True)
    leaf = _cert(server_key, "127.0.0.1", ca_key, "ebpm test CA", ca=False, san_ip="127.0.0.1")
    (root / "ca.pem").write_bytes(_pem_cert(ca))
    (root / "server.pem").write_bytes(_pem_cert(leaf))
    (root / "server.key").write_bytes(_pem_key(server_key))
    reg = start_registry(tls={"certificate": str(root / "server.pem"),
                              "key": str(root / "server.key")})
    yield TLSRegistry(reg, str(root / "ca.pem"))
    reg.stop()
