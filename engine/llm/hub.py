"""The Hugging Face Hub over plain HTTP: file metadata, repository listings, byte ranges.

Plain `http.client` instead of `huggingface_hub`, so that every failure a person can meet
(no network, a proxy that wants a login, a 404, a stalled server, an expired link) turns
into one clear MemDeskError, and so that a download can be cancelled from another thread
at once (the socket is shut down) and resumed with a Range request.

The layout is the Hub's own, under $HF_ENDPOINT (default https://huggingface.co):
- `{endpoint}/{repo}/resolve/{revision}/{file}`: HEAD gives the metadata without
  following the redirect: X-Repo-Commit (the exact version), X-Linked-Etag (the LFS
  sha256) and X-Linked-Size for large files, ETag (the git blob sha1) for small ones;
  GET redirects to the bytes and honours Range.
- `{endpoint}/api/models/{repo}/revision/{revision}?blobs=true`: the commit and every file
  with its size and sha256 (an MLX model is a folder of files).
Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY (and the system settings on macOS
and Windows), as urllib reads them. HF_TOKEN, when set, is sent to the endpoint's host only.
"""
from __future__ import annotations

import base64
import errno
import http.client
import json
import os
import re
import socket
import ssl
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote, unquote, urljoin, urlsplit

from memdesk.engine.errors import DownloadError, NotFoundError

ENDPOINT_ENV = "HF_ENDPOINT"
DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_ENV = "HF_TOKEN"
USER_AGENT = "MemDesk/0.1 (model download)"
MAX_REDIRECTS = 5
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class TransientDownloadError(DownloadError):
    """The transfer may go on from where it stopped: a dropped connection, a stall, a busy server."""


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 20.0
    read_s: float = 30.0  # no byte for this long and the server counts as stalled


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    revision: str  # what was asked for ("main")
    commit: str | None  # what "main" was then: a resume asks for these exact bytes
    size: int
    sha256: str | None  # large (LFS) files: the sha256 the Hub publishes
    git_sha1: str | None  # small files kept in git: their blob id, sha1("blob N\0" + bytes)
    direct_url: str | None = None  # a file from elsewhere than the Hub (a wheel on PyPI)

    @property
    def url(self) -> str:
        return self.direct_url or resolve_url(self.repo, self.filename, self.commit or self.revision)


def endpoint() -> str:
    return (os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")


def resolve_url(repo: str, filename: str, revision: str = "main") -> str:
    return f"{endpoint()}/{repo}/resolve/{quote(revision, safe='')}/{quote(filename)}"


class Response:
    """One HTTP response whose body is read in pieces; `abort()` may be called from any thread."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, url: str,
                 sock: socket.socket | None):
        # http.client drops conn.sock once a response owns the connection; the socket is kept here
        # so that abort() can reach it.
        self._conn, self._resp, self.url, self._sock = conn, resp, url, sock
        self.status = resp.status
        self.headers = resp.headers

    def read1(self, size: int) -> bytes:
        return self._resp.read1(size)

    def abort(self) -> None:
        """Unblock a read that is waiting for the network (a cancel from the GUI thread)."""
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed: nothing is waiting on it

    def close(self) -> None:
        self._resp.close()
        self._conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def request(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            timeouts: Timeouts = Timeouts(), follow_redirects: bool = True, what: str = "") -> Response:
    """Send one request (through the proxy the environment names) and return a response whose
    status is 2xx, 3xx (when not following) or 416; anything else raises a MemDeskError."""
    what = what or url
    for _ in range(MAX_REDIRECTS + 1):
        response = _send(url, method, headers or {}, timeouts)
        if follow_redirects and response.status in (301, 302, 303, 307, 308):
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise DownloadError(f"The server redirected {what} nowhere. Check HF_ENDPOINT, then try again.")
            url = urljoin(url, location)
            continue
        if response.status < 400 or response.status == 416:
            return response
        try:
            raise _status_error(response, what)
        finally:
            response.close()
    raise DownloadError(f"Too many redirects for {what}; the server or a proxy is misconfigured. Try again later.")


def file_metadata(repo: str, filename: str, revision: str = "main", *, timeouts: Timeouts = Timeouts()) -> RemoteFile:
    """Size, sha256 and commit of one file, read from the Hub's headers (HEAD, redirect not followed)."""
    url = resolve_url(repo, filename, revision)
    what = f"{repo}/{filename}"
    for _ in range(MAX_REDIRECTS + 1):
        response = request(url, method="HEAD", timeouts=timeouts, follow_redirects=False, what=what)
        response.close()
        headers = response.headers
        location = headers.get("Location")
        # A renamed repository answers with a redirect to its new name on the same host and no
        # file metadata yet; the redirect to the storage host carries the metadata itself.
        if response.status in (301, 302, 307, 308) and location and not headers.get("X-Linked-Etag") \
                and urlsplit(urljoin(url, location)).netloc == urlsplit(url).netloc:
            url = urljoin(url, location)
            continue
        break
    etag = _strip_etag(headers.get("X-Linked-Etag") or headers.get("ETag") or "")
    size_text = headers.get("X-Linked-Size") or (headers.get("Content-Length") if response.status == 200 else None)
    if not size_text or not size_text.isdigit():
        raise DownloadError(f"The server at {endpoint()} did not say how large {what} is, so it cannot be "
                            f"downloaded safely. Is {ENDPOINT_ENV} a Hugging Face Hub or mirror?")
    return RemoteFile(repo, filename, revision, headers.get("X-Repo-Commit"), int(size_text),
                      etag if _SHA256.match(etag) else None, etag if _SHA1.match(etag) else None)


def repo_files(repo: str, revision: str = "main", *, timeouts: Timeouts = Timeouts()) -> list[RemoteFile]:
    """Every file of a repository at one commit, with sizes and hashes (for MLX model folders)."""
    url = f"{endpoint()}/api/models/{repo}/revision/{quote(revision, safe='')}?blobs=true"
    with request(url, timeouts=timeouts, what=f"the file list of {repo}") as response:
        body = _read_all(response, limit=16 << 20)
    try:
        data = json.loads(body)
        commit = data.get("sha")
        out = []
        for sibling in data["siblings"]:
            lfs = sibling.get("lfs") or {}
            size = lfs.get("size", sibling.get("size"))
            if not isinstance(size, int):
                raise ValueError(f"no size for {sibling.get('rfilename')}")
            blob = sibling.get("blobId") or ""
            out.append(RemoteFile(repo, sibling["rfilename"], revision, commit, size,
                                  lfs.get("sha256") if _SHA256.match(lfs.get("sha256") or "") else None,
                                  None if lfs else (blob if _SHA1.match(blob) else None)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DownloadError(f"The file list of {repo} from {endpoint()} could not be read ({exc}). "
                            "Try again later; if it repeats, the catalog entry may be out of date.") from exc
    return out


# ------------------------------------------------------------------ internals
def _send(url: str, method: str, headers: dict[str, str], timeouts: Timeouts) -> Response:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"{url} is not an http(s) address. Check {ENDPOINT_ENV}.")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"
    all_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
    token = os.environ.get(TOKEN_ENV)
    if token and parts.netloc == urlsplit(endpoint()).netloc:  # never to a storage host it redirects to
        all_headers["Authorization"] = f"Bearer {token}"
    proxy = _proxy_for(parts.scheme, parts.hostname)
    if proxy is None:
        conn = (http.client.HTTPSConnection(parts.hostname, port, timeout=timeouts.connect_s, context=_ssl_context())
                if https else http.client.HTTPConnection(parts.hostname, port, timeout=timeouts.connect_s))
    else:
        proxy_parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if proxy_parts.scheme != "http" or not proxy_parts.hostname:
            raise DownloadError(f"The proxy {proxy} is not an http:// proxy, which is what MemDesk supports. "
                                f"Set {_proxy_env(parts.scheme)} to http://host:port.")
        auth = {}
        if proxy_parts.username:
            secret = f"{unquote(proxy_parts.username)}:{unquote(proxy_parts.password or '')}"
            auth["Proxy-Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        if https:
            conn = http.client.HTTPSConnection(proxy_parts.hostname, proxy_parts.port or 80,
                                               timeout=timeouts.connect_s, context=_ssl_context())
            conn.set_tunnel(parts.hostname, port, headers=auth)
        else:
            conn = http.client.HTTPConnection(proxy_parts.hostname, proxy_parts.port or 80, timeout=timeouts.connect_s)
            target = url  # a plain-HTTP proxy takes the whole address
            all_headers.update(auth)
    try:
        conn.connect()
        sock = conn.sock
        sock.settimeout(timeouts.read_s)  # from now on the timeout means "stalled"
        conn.request(method, target, headers=all_headers)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _connect_error(exc, parts.hostname, port, proxy, parts.scheme, timeouts) from exc
    if resp.status == 407:
        resp.close()
        conn.close()
        raise _proxy_login_error(proxy, parts.scheme)
    return Response(conn, resp, url, sock)


def _proxy_for(scheme: str, host: str) -> str | None:
    if urllib.request.proxy_bypass(host):  # NO_PROXY (and the system's exceptions on macOS/Windows)
        return None
    return urllib.request.getproxies().get(scheme)


def _proxy_env(scheme: str) -> str:
    return "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY"


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()  # the system's certificates, and SSL_CERT_FILE if set
    try:  # some Python builds (python.org on macOS) have no system roots; certifi's fill the gap
        import certifi

        context.load_verify_locations(certifi.where())
    except (ImportError, OSError):
        pass
    return context


def _proxy_login_error(proxy: str | None, scheme: str) -> DownloadError:
    return DownloadError(f"The proxy {proxy} asks for a login (407 Proxy Authentication Required). Put the user "
                         f"name and password in {_proxy_env(scheme)} as http://user:password@host:port, "
                         "then try again.")


def _connect_error(exc: BaseException, host: str, port: int, proxy: str | None, scheme: str,
                   timeouts: Timeouts) -> DownloadError:
    env = _proxy_env(scheme)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DownloadError(f"The secure connection to {host} could not be verified ({exc.verify_message}). "
                             "A proxy or antivirus that inspects HTTPS may be in the way: set SSL_CERT_FILE to its "
                             "certificate, or try another network.")
    if isinstance(exc, ssl.SSLError):
        return TransientDownloadError(f"The secure connection to {host} failed ({exc.reason or exc}). Try again; "
                                      "if it repeats, a proxy or firewall may be blocking it.")
    message = str(exc)
    if proxy and "Tunnel connection failed" in message:
        if "407" in message:
            return _proxy_login_error(proxy, scheme)
        return DownloadError(f"The proxy {proxy} would not connect to {host} ({message.split(':', 1)[-1].strip()}). "
                             f"Check {env}, or ask whoever runs the proxy to allow {host}.")
    if isinstance(exc, socket.gaierror):
        if proxy:
            return DownloadError(f"The proxy host in {env}={proxy} could not be found. Check that setting, or "
                                 "unset it to connect directly.")
        return DownloadError(f"No network: {host} could not be looked up. Check the internet connection (or set "
                             f"{ENDPOINT_ENV} to a mirror you can reach), then try again.")
    if isinstance(exc, ConnectionRefusedError):
        if proxy:
            return DownloadError(f"The proxy {proxy} (from {env}) refused the connection. Check that the proxy runs "
                                 "and the setting is right, or unset it to connect directly.")
        return DownloadError(f"Could not connect to {host}:{port}: the connection was refused. Check the internet "
                             f"connection, or {ENDPOINT_ENV} if you set it, then try again.")
    if isinstance(exc, TimeoutError):
        return TransientDownloadError(f"{proxy or host} did not answer within {timeouts.connect_s:.0f} s. Check the "
                                      "internet connection, then try again; the download resumes.")
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN):
        return DownloadError(f"No network: {host} cannot be reached ({exc.strerror}). Connect to the internet, "
                             "then try again.")
    if isinstance(exc, (ConnectionError, http.client.HTTPException)):
        return TransientDownloadError(f"The connection to {host} dropped ({exc.__class__.__name__}). Try again; "
                                      "the download resumes where it stopped.")
    return DownloadError(f"Could not connect to {host}: {getattr(exc, 'strerror', None) or exc}. Check the "
                         "network, then try again.")


def _status_error(response: Response, what: str) -> DownloadError | NotFoundError:
    status, code = response.status, response.headers.get("X-Error-Code", "")
    host = urlsplit(response.url).netloc
    on_hub = host == urlsplit(endpoint()).netloc
    if status == 404 or code in ("RepoNotFound", "EntryNotFound", "RevisionNotFound"):
        kind = {"RepoNotFound": "repository", "RevisionNotFound": "version"}.get(code, "file")
        return NotFoundError(f"{what} was not found on {endpoint()} ({status}, the {kind} does not exist). The "
                             "model catalog may be out of date: update MemDesk, or choose another model "
                             "(`memdesk model list`).")
    if status in (401, 403) and on_hub:
        return DownloadError(f"{endpoint()} refused {what} ({status}{', ' + code if code else ''}): the model needs a "
                             f"Hugging Face account. Accept its licence on its page, then set {TOKEN_ENV} to an "
                             "access token and try again.")
    if status == 403 or status == 408 or status == 429 or status >= 500:
        # 403 from the storage host: the signed link expired; a new request gets a fresh one.
        return TransientDownloadError(f"{host} answered {status} {response._resp.reason} for {what}. Try again "
                                      "in a few minutes; the download resumes where it stopped.")
    return DownloadError(f"{host} answered {status} {response._resp.reason} for {what}. Try again later; if it "
                         f"repeats, check {ENDPOINT_ENV} and your proxy settings.")


def _strip_etag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"').lower()


def _read_all(response: Response, *, limit: int) -> bytes:
    chunks, total = [], 0
    try:
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise DownloadError(f"{response.url} sent more than {limit >> 20} MB where a short listing was "
                                    f"expected. Check {ENDPOINT_ENV}.")
            chunks.append(chunk)
    except (OSError, http.client.HTTPException) as exc:
        raise TransientDownloadError(f"The connection dropped while reading {response.url} ({exc}). "
                                     "Try again.") from exc
    return b"".join(chunks)
