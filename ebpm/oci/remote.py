"""Client for the OCI distribution API of one registry: manifests, blobs, uploads, mounts, tags,
catalog; every byte it returns is verified against its digest.

Bodies are streamed: a blob goes to a file as it is hashed (`fetch_blob`), so memory stays flat
whatever its size; manifests, tag lists and small blobs are read within their caps."""

from __future__ import annotations

import io
from collections.abc import Callable

from ebpm.digests import sha256, sha256_digest
from ebpm.errors import (
    DigestMismatchError,
    NotFoundError,
    RegistryError,
    TooLargeError,
    UsageError,
)
from ebpm.limits import human_size, limits
from ebpm.oci.auth import Credentials, Scope
from ebpm.oci.model import INDEX_V1, MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, Descriptor
from ebpm.oci.reference import DIGEST_RE, is_repository, is_tag
from ebpm.oci.transport import CHUNK, RETRIES, TIMEOUT, Transport, iter_body, read_body, with_query

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import IO

    from ebpm.oci.http import Response

__all__ = ["Registry", "check_credentials", "CHUNK"]

MAX_PAGES = 1000  # Link pagination stops here (a registry that links in circles)

Progress = Callable[[int], None]


# what quote(reference, safe=":") leaves as it is (a valid tag or digest is all of these)
_QUOTED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~:")


def _join(base: str, link: str) -> str:
    """A Location or Link URL resolved against the URL that sent it (urllib.parse, imported
    only then: a plain pull follows none)."""
    from urllib.parse import urljoin

    return urljoin(base, link)


_MANIFEST_CAP = ("nothing was stored; raise EBPM_MAX_MANIFEST_SIZE if you trust this registry "
                 "(else: a broken or hostile one)")


def _check_referrers(name: str, count: int) -> None:
    cap = limits().referrers
    if count > cap:
        raise TooLargeError(
            f"{name}: more than {cap} referrers (EBPM_MAX_REFERRERS)",
            hint="a hostile or broken registry; nothing was stored (raise the cap if this "
            "package really has that many signatures, SBOMs and attestations)")


class Registry:
    """Client for one registry host (connections kept and reused by the transport)."""

    def __init__(
        self, host: str, *, insecure: bool = False, ca_bundle: str | None = None,
        credentials: Credentials | None = None, timeout: float = TIMEOUT, retries: int = RETRIES,
        offline: bool = False,
    ) -> None:
        self.host = host
        self.transport = Transport(
            host, insecure=insecure, ca_bundle=ca_bundle, credentials=credentials,
            timeout=timeout, retries=retries, offline=offline,
        )
        # the registry answered a referrers request with 404/400/405: it has no referrers API
        # (one that has it never answers 404, says the spec), so this client asks no more
        self.no_referrers_api = False

    @property
    def base_url(self) -> str:
        """https://host, or http://host for loopback or insecure registries."""
        return self.transport.base_url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.base_url!r})"

    # -- helpers ----------------------------------------------------------------------------

    def _name(self, repository: str, reference: str = "") -> str:
        if not reference:
            return f"{self.host}/{repository}"
        sep = "@" if reference.startswith("sha256:") else ":"
        return f"{self.host}/{repository}{sep}{reference}"

    @staticmethod
    def _pull(repository: str) -> tuple[Scope, ...]:
        return (Scope("repository", repository, frozenset({"pull"})),)

    @staticmethod
    def _push(repository: str) -> tuple[Scope, ...]:
        return (Scope("repository", repository, frozenset({"pull", "push"})),)

    @staticmethod
    def _path(repository: str, kind: str, reference: str = "") -> str:
        path = f"/v2/{repository}/{kind}/"
        if not reference or _QUOTED.issuperset(reference):  # as quote() leaves it
            return path + reference
        from urllib.parse import quote

        return path + quote(reference, safe=":")

    def _location(self, resp: Response, context: str) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{context}: the registry sent no upload Location",
                                status=resp.status_code)
        return _join(resp.url, location)

    # -- version check ----------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/: the registry speaks the distribution API and accepts our credentials."""
        context = f"registry {self.host}"
        resp = self.transport.request("GET", "/v2/", context=context)
        self.transport.expect(resp, context, (200,))
        resp.close()

    # -- manifests --------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, reference: str, *, max_size: int | None = None
    ) -> tuple[bytes, str, str]:
        """The manifest's exact bytes, media type and digest (verified; size capped at
        `max_size`, by default EBPM_MAX_MANIFEST_SIZE)."""
        max_size = limits().manifest_size if max_size is None else max_size
        name = self._name(repository, reference)
        resp = self.transport.request(
            "GET", self._path(repository, "manifests", reference), context=name,
            scopes=self._pull(repository), headers={"Accept": MANIFEST_ACCEPT}, stream=True,
        )
        with resp:
            self.transport.expect(
                resp, name, (200,),
                hint=f"`ebpm tags {self.host}/{repository}` lists its versions (tags are "
                     "versions without a 'v', '+' written '_')",
            )
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_size:
                raise TooLargeError(
                    f"{name}: the manifest announces {human_size(int(length))}, more than the "
                    f"{human_size(max_size)} cap (EBPM_MAX_MANIFEST_SIZE)", hint=_MANIFEST_CAP)
            buf = bytearray()
            for chunk in iter_body(resp, f"{name}: manifest"):
                buf += chunk
                if len(buf) > max_size:
                    raise TooLargeError(
                        f"{name}: the manifest exceeds the {human_size(max_size)} cap "
                        "(EBPM_MAX_MANIFEST_SIZE)", hint=_MANIFEST_CAP)
            media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest", "")
        data = bytes(buf)
        digest = sha256_digest(data)
        if DIGEST_RE.fullmatch(reference):
            if digest != reference:
                raise DigestMismatchError(
                    f"{name}: manifest: got digest {digest}, want {reference}",
                    hint="the registry sent other content; nothing was stored",
                )
        elif header_digest.startswith("sha256:") and header_digest != digest:
            raise DigestMismatchError(
                f"{name}: manifest: got digest {digest}, registry says {header_digest}",
                hint="the download was corrupted or tampered with; nothing was stored",
            )
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = _media_type_of(data) or media_type
        return data, media_type, digest

    def head_manifest(self, repository: str, reference: str) -> Descriptor | None:
        """The manifest's descriptor without its body; None when there is none (404)."""
        name = self._name(repository, reference)
        resp = self.transport.request(
            "HEAD", self._path(repository, "manifests", reference), context=name,
            scopes=self._pull(repository), headers={"Accept": MANIFEST_ACCEPT},
        )
        with resp:
            if resp.status_code == 404:
                return None
            self.transport.expect(resp, name, (200,))
            digest = resp.headers.get("Docker-Content-Digest", "")
            media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            length = resp.headers.get("Content-Length", "")
        if not DIGEST_RE.fullmatch(digest) or not length.isdigit():
            data, media_type, digest = self.get_manifest(repository, reference)
            return Descriptor(media_type, digest, len(data))
        if DIGEST_RE.fullmatch(reference) and digest != reference:
            raise DigestMismatchError(f"{name}: registry says digest {digest}")
        return Descriptor(media_type, digest, int(length))

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """Upload the manifest's exact bytes under a tag or its digest; return its digest."""
        name = self._name(repository, reference)
        if len(data) > MAX_MANIFEST_SIZE:
            raise TooLargeError(
                f"{name}: manifest of {len(data)} bytes exceeds the {MAX_MANIFEST_SIZE}-byte cap"
            )
        digest = sha256_digest(data)
        if DIGEST_RE.fullmatch(reference) and reference != digest:
            raise DigestMismatchError(f"{name}: manifest bytes have digest {digest}")
        resp = self.transport.request(
            "PUT", self._path(repository, "manifests", reference), context=name,
            scopes=self._push(repository), headers={"Content-Type": media_type}, data=data,
        )
        with resp:
            self.transport.expect(resp, f"{name}: push manifest",
                                  (200, 201))
            stored = resp.headers.get("Docker-Content-Digest", "")
        if stored.startswith("sha256:") and stored != digest:
            raise DigestMismatchError(
                f"{name}: registry stored the manifest as {stored}, want {digest}",
                hint="the registry rewrote the manifest; it cannot hold ebpm packages",
            )
        return digest

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest (distribution refuses deletes by tag)."""
        if not DIGEST_RE.fullmatch(digest):
            raise UsageError(
                f"delete {self._name(repository, digest)}: manifests are deleted by digest",
                hint="resolve the tag first (head_manifest) and delete that digest",
            )
        name = self._name(repository, digest)
        resp = self.transport.request(
            "DELETE", self._path(repository, "manifests", digest), context=f"delete {name}",
            scopes=(Scope("repository", repository, frozenset({"delete"})),),
        )
        with resp:
            hint = ("the registry has deletes disabled (storage.delete.enabled)"
                    if resp.status_code == 405 else None)
            self.transport.expect(resp, f"delete {name}", (200, 202),
                                  hint=hint)

    # -- blobs ------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        name = self._name(repository, digest)
        resp = self.transport.request(
            "HEAD", self._path(repository, "blobs", digest), context=f"blob {name}",
            scopes=self._pull(repository),
        )
        with resp:
            if resp.status_code == 404:
                return False
            self.transport.expect(resp, f"blob {name}", (200,))
            return True

    def get_blob(
        self, repository: str, digest: str, *, size: int | None = None,
        progress: Progress | None = None, max_size: int | None = None,
    ) -> bytes:
        """A small blob's bytes (a config, a signature payload), verified against digest and
        size, and never more than `max_size` (default EBPM_MAX_PACKAGE_SIZE) of them."""
        buf = io.BytesIO()
        self.fetch_blob(repository, digest, buf, size=size, progress=progress, max_size=max_size)
        return buf.getvalue()

    def fetch_blob(
        self, repository: str, digest: str, into: IO[bytes], *, size: int | None = None,
        progress: Progress | None = None, max_size: int | None = None,
    ) -> int:
        """Stream the blob into `into` while hashing it; verify digest and size; return its
        size. Refused before any byte is read when its declared size exceeds `max_size`
        (default EBPM_MAX_PACKAGE_SIZE). On an error `into` holds a partial body: the caller
        discards it (a temp file). progress(delta) as bytes come."""
        name = f"blob {self._name(repository, digest)}"
        if not DIGEST_RE.fullmatch(digest):
            raise UsageError(f"{name}: not a sha256 digest")
        cap = limits().package_size if max_size is None else max_size
        if size is not None and size > cap:
            raise TooLargeError(
                f"{name}: declared {human_size(size)}, more than the {human_size(cap)} cap "
                "(EBPM_MAX_PACKAGE_SIZE)",
                hint="nothing was downloaded; raise EBPM_MAX_PACKAGE_SIZE if you expect it",
            )
        resp = self.transport.request(
            "GET", self._path(repository, "blobs", digest), context=name,
            scopes=self._pull(repository), stream=True,
        )
        with resp:
            self.transport.expect(resp, name, (200,))
            length = resp.headers.get("Content-Length", "")
            if size is not None and length.isdigit() and int(length) != size:
                raise DigestMismatchError(
                    f"{name}: registry announces {length} bytes, want {size}",
                    hint="the registry holds other content; nothing was stored",
                )
            limit = size if size is not None else cap
            hasher = sha256()
            received = 0
            for chunk in iter_body(resp, name):
                received += len(chunk)
                if received > limit:
                    if size is None:
                        raise TooLargeError(
                            f"{name}: more than the {human_size(cap)} cap "
                            "(EBPM_MAX_PACKAGE_SIZE)",
                            hint="nothing was stored",
                        )
                    raise DigestMismatchError(
                        f"{name}: got more than {size} bytes",
                        hint="the registry sent other content; nothing was stored",
                    )
                hasher.update(chunk)
                into.write(chunk)
                if progress is not None:
                    progress(len(chunk))
        if size is not None and received != size:
            raise DigestMismatchError(
                f"{name}: download truncated: got {received} bytes, want {size}",
                hint="the connection broke or the registry lied; try again (nothing was stored)",
            )
        got = "sha256:" + hasher.hexdigest()
        if got != digest:
            raise DigestMismatchError(
                f"{name}: got digest {got}, want {digest}",
                hint="the content was corrupted or tampered with; nothing was stored",
            )
        return received

    def _start_upload(
        self, repository: str, *, mount: tuple[str, str] | None = None
    ) -> str | None:
        """POST an upload; the session's Location, or None when a mount made it unneeded."""
        name = self._name(repository)
        path = self._path(repository, "blobs", "uploads") + "/"
        scopes = self._push(repository)
        if mount is not None:
            digest, source = mount
            path = with_query(path, mount=digest, **{"from": source})
            scopes = scopes + (Scope("repository", source, frozenset({"pull"})),)
        context = f"{name}: start upload"
        resp = self.transport.request("POST", path, context=context, scopes=scopes, data=b"")
        with resp:
            self.transport.expect(resp, context, (201, 202))
            if resp.status_code == 201 and mount is not None:
                return None
            return self._location(resp, context)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; False when the registry opened an upload instead."""
        location = self._start_upload(repository, mount=(digest, from_repository))
        if location is None:
            return True
        self._cancel(location, repository)
        return False

    def _cancel(self, location: str, repository: str) -> None:
        try:
            resp = self.transport.request(
                "DELETE", location, context=f"{self._name(repository)}: cancel upload",
                scopes=self._push(repository),
            )
            resp.close()
        except RegistryError:
            pass  # an abandoned upload session expires on its own

    def push_blob(
        self, repository: str, digest: str, data: bytes, *, mount_from: str | None = None,
        chunk_size: int | None = None, progress: Progress | None = None,
    ) -> bool:
        """Upload a blob unless the registry has it: mount, monolithic POST+PUT, or chunked.

        True when bytes were uploaded; False when the registry had the blob or mounted it.
        """
        name = f"blob {self._name(repository, digest)}"
        if sha256_digest(data) != digest:
            raise DigestMismatchError(f"{name}: the data to push has digest {sha256_digest(data)}")
        if self.blob_exists(repository, digest):
            if progress is not None:
                progress(len(data))
            return False
        location = self._start_upload(
            repository, mount=(digest, mount_from) if mount_from else None
        )
        if location is None:  # mounted
            if progress is not None:
                progress(len(data))
            return False
        scopes = self._push(repository)
        octets = {"Content-Type": "application/octet-stream"}
        body = data
        if chunk_size is not None and chunk_size > 0 and data:
            for start in range(0, len(data), chunk_size):
                chunk = data[start:start + chunk_size]
                headers = dict(octets, **{
                    "Content-Range": f"{start}-{start + len(chunk) - 1}",
                    "Content-Length": str(len(chunk)),
                })
                resp = self.transport.request(
                    "PATCH", location, context=f"{name}: upload chunk at {start}",
                    scopes=scopes, headers=headers, data=chunk,
                )
                with resp:
                    self.transport.expect(resp, f"{name}: upload chunk at {start}",
                                          (202,))
                    location = self._location(resp, name)
                if progress is not None:
                    progress(len(chunk))
            body = b""
        resp = self.transport.request(
            "PUT", with_query(location, digest=digest), context=f"{name}: finish upload",
            scopes=scopes, headers=octets, data=body,
        )
        with resp:
            self.transport.expect(resp, f"{name}: finish upload",
                                  (201, 204))
            stored = resp.headers.get("Docker-Content-Digest", "")
        if stored.startswith("sha256:") and stored != digest:
            raise DigestMismatchError(f"{name}: registry stored it as {stored}")
        if progress is not None and body:
            progress(len(body))
        return True

    # -- referrers --------------------------------------------------------------------------

    def referrers_api(self, repository: str, digest: str) -> list[Descriptor] | None:
        """The referrers API's answer for `digest` (`GET /v2/<name>/referrers/<digest>`), every
        page of it (Link `rel="next"`), or None when the registry does not offer the API.
        Bounded: at most MAX_PAGES pages and EBPM_MAX_REFERRERS entries, each page capped as a
        manifest (EBPM_MAX_MANIFEST_SIZE); a registry that links in circles stops at the loop."""
        from ebpm.oci.referrers import parse_index

        if self.no_referrers_api:
            return None
        name = f"referrers of {self._name(repository, digest)}"
        found: dict[str, Descriptor] = {}
        url: str | None = self._path(repository, "referrers", digest)
        seen: set[str] = set()
        while url is not None and self.transport.url(url) not in seen:
            if len(seen) >= MAX_PAGES:
                raise TooLargeError(
                    f"{name}: more than {MAX_PAGES} pages",
                    hint="a hostile or broken registry; nothing was stored")
            seen.add(self.transport.url(url))
            resp = self.transport.request(
                "GET", url, context=name, scopes=self._pull(repository),
                headers={"Accept": INDEX_V1}, stream=True,
            )
            with resp:
                media_type = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
                if resp.status_code != 200 or media_type != INDEX_V1:
                    if len(seen) > 1:  # a later page must be a page of the same answer
                        self.transport.expect(resp, name, (200,))
                        got = media_type or "no media type"
                        raise RegistryError(f"{name}: page {len(seen)} is {got}, not an image "
                                            "index")
                    if resp.status_code not in (200, 400, 404, 405):
                        self.transport.expect(resp, name, (200,))
                    self.no_referrers_api = resp.status_code != 200
                    return None
                data = read_body(resp, name, limits().manifest_size,
                                 cap_name="EBPM_MAX_MANIFEST_SIZE")
                following = resp.links.get("next", {}).get("url")
                url = _join(resp.url, following) if following else None
            for desc in parse_index(data, where=f"{name} (page {len(seen)})"):
                found.setdefault(desc.digest, desc)
            _check_referrers(name, len(found))
        return list(found.values())

    def referrers(self, repository: str, digest: str) -> list[Descriptor]:
        """The manifests whose `subject` is `digest` (OCI 1.1): the referrers API's index, or,
        where the registry has no such API, the index at the fallback tag `sha256-<hex>`;
        empty when there are none. At most EBPM_MAX_REFERRERS entries."""
        from ebpm.oci.referrers import parse_index, referrers_tag

        found = self.referrers_api(repository, digest)
        if found is not None:
            return found
        try:
            data, _, _ = self.get_manifest(repository, referrers_tag(digest))
        except NotFoundError:
            return []
        name = self._name(repository, referrers_tag(digest))
        entries = parse_index(data, where=name)
        _check_referrers(name, len(entries))
        return entries

    # -- listings ---------------------------------------------------------------------------

    def _pages(
        self, path: str, key: str, context: str, scopes: tuple[Scope, ...], hint: str,
        valid: Callable[[str], bool],
    ) -> list[str]:
        """Every item of a paginated listing, each once, in the order received; each page is
        capped (EBPM_MAX_TAGS_SIZE, decompressed) and so is the number of pages; a page that
        is not `{key: [items valid names]}` is refused."""
        cap = limits().tags_size
        items: dict[str, None] = {}
        url: str | None = path
        seen: set[str] = set()
        while url is not None and self.transport.url(url) not in seen and len(seen) < MAX_PAGES:
            seen.add(self.transport.url(url))
            resp = self.transport.request("GET", url, context=context, scopes=scopes,
                                          stream=True)
            with resp:
                self.transport.expect(resp, context, (200,), hint=hint)
                body = read_body(resp, context, cap, cap_name="EBPM_MAX_TAGS_SIZE")
                items.update((v, None) for v in _listed(body, key, context, valid))
                following = resp.links.get("next", {}).get("url")
                url = _join(resp.url, following) if following else None
        return list(items)

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of `repository`, following Link pagination; unsorted, as received."""
        return self._pages(
            self._path(repository, "tags", "list"), "tags", f"tags of {self._name(repository)}",
            self._pull(repository), hint="check the repository name (is it pushed yet?)",
            valid=is_tag,
        )

    def catalog(self) -> list[str]:
        """Every repository the registry lists (following Link pagination)."""
        return self._pages(
            "/v2/_catalog", "repositories", f"catalog of {self.host}",
            (Scope("registry", "catalog", frozenset({"*"})),),
            hint="this registry may not offer a catalog", valid=is_repository,
        )


def _listed(body: bytes, key: str, context: str, valid: Callable[[str], bool]) -> list[str]:
    """The names of one page of a tag list or catalog (`{"tags": [...]}`; null or no list:
    none), each checked: anything else is a broken or hostile registry's, never shown."""
    import json

    what = "tag list" if key == "tags" else "catalog"
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise _malformed(context, what, "not JSON") from err
    values = doc.get(key) if isinstance(doc, dict) else ()
    if values is None:
        return []
    if not isinstance(values, list):
        raise _malformed(context, what, f'not an object with a "{key}" list')
    for value in values:
        if not (isinstance(value, str) and valid(value)):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise _malformed(context, what, f"{shown} is not a "
                             + ("tag" if key == "tags" else "repository name"))
    return values


def _malformed(context: str, what: str, why: str) -> RegistryError:
    return RegistryError(f"{context}: malformed {what}: {why}",
                         hint="the registry's answer is not the distribution API's (a broken "
                              "or hostile registry, or not a registry at that address)")


def _media_type_of(data: bytes) -> str:
    import json

    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return ""
    value = doc.get("mediaType") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""




def check_credentials(
    host: str, credentials: Credentials, *, insecure: bool = False, ca_bundle: str | None = None,
) -> None:
    """Prove `credentials` against `host` (GET /v2/, through the token server if it uses one);
    raise AuthError "wrong credentials" when they are refused."""
    with Registry(host, insecure=insecure, ca_bundle=ca_bundle, credentials=credentials,
                  retries=0) as client:
        client.ping()
