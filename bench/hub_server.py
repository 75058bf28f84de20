"""A Hugging Face Hub on loopback: real files under the Hub's URL layout, with faults to inject.

The download tests and `python -m bench.download` point HF_ENDPOINT at it. It answers the
way huggingface.co does for what MemDesk asks:
- HEAD/GET `/{repo}/resolve/{revision}/{file}`: large ("LFS") files redirect (302) to
  `/cdn/...` with X-Repo-Commit, X-Linked-Etag (their sha256) and X-Linked-Size; small
  files are served directly with ETag = their git blob id. An unknown repository answers
  401 RepoNotFound, an unknown file 404 EntryNotFound, as the Hub does.
- GET `/cdn/...`: the bytes, honouring `Range: bytes=N-` with 206 and Content-Range.
- GET `/api/models/{repo}/revision/{revision}?blobs=true`: the commit and the files.
Faults (`hub.faults`): cut the connection at byte N of the file, stall at byte N until
`hub.release` is set, publish a wrong sha256, ignore Range, answer 404 for a file.
Every request is logged in `hub.requests` (method, path, Range, status, body bytes sent).
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")
_CHUNK = 256 * 1024
_STALL_LIMIT_S = 300  # a stalled response gives up by itself if nobody ever releases it


@dataclass
class Faults:
    # Offsets are into the file: a response of a file that long, starting at or before them, is affected.
    drop_after: int | None = None  # close the connection when the body reaches this byte...
    drop_count: int = 1  # ...this many times, then serve normally
    stall_after: int | None = None  # stop sending at this byte until `release` is set...
    stall_count: int = 1  # ...this many times (a large number: every time)
    wrong_sha256: bool = False  # publish the sha256 of other bytes
    ignore_range: bool = False  # answer Range requests with 200 and the whole file
    missing: set[str] = field(default_factory=set)  # "repo/file" that answer 404
    claim_size: int | None = None  # publish this X-Linked-Size instead of the real one (a huge file)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class _File:
    source: Path | bytes
    size: int
    sha256: str
    git_sha1: str
    lfs: bool

    def open_at(self, start: int):
        if isinstance(self.source, bytes):
            return _BytesReader(self.source, start)
        fh = open(self.source, "rb")
        fh.seek(start)
        return fh


class _BytesReader:
    def __init__(self, data: bytes, start: int):
        self.view, self.pos = memoryview(data), start

    def read(self, n: int) -> bytes:
        out = self.view[self.pos:self.pos + n]
        self.pos += len(out)
        return bytes(out)

    def close(self) -> None:
        pass


class LoopbackHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, _File]] = {}
        self.commits: dict[str, str] = {}
        self.faults = Faults()
        self.release = threading.Event()  # lets stalled responses go on (set on stop)
        self.stalled = threading.Event()  # set when a response starts stalling
        self.requests: list[LoggedRequest] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------- content
    def add_file(self, repo: str, filename: str, source: Path | bytes, *, lfs: bool | None = None) -> None:
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(usedforsecurity=False)
        size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
        sha1.update(b"blob %d\0" % size)
        if isinstance(source, bytes):
            sha256.update(source)
            sha1.update(source)
        else:
            with open(source, "rb") as fh:
                while block := fh.read(8 << 20):
                    sha256.update(block)
                    sha1.update(block)
        is_lfs = filename.endswith(LFS_SUFFIXES) if lfs is None else lfs
        self.repos.setdefault(repo, {})[filename] = _File(source, size, sha256.hexdigest(), sha1.hexdigest(), is_lfs)
        self.commits.setdefault(repo, hashlib.sha1(f"{repo}@1".encode(), usedforsecurity=False).hexdigest())

    def sha256(self, repo: str, filename: str) -> str:
        return self.repos[repo][filename].sha256

    def new_commit(self, repo: str) -> str:
        """Pretend the repository was updated (same files, new commit id)."""
        self.commits[repo] = hashlib.sha1(f"{self.commits[repo]}+".encode(), usedforsecurity=False).hexdigest()
        return self.commits[repo]

    # ---------------------------------------------------------- server
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def body_bytes(self, path_prefix: str = "/cdn/") -> int:
        with self.lock:
            return sum(r.body_bytes for r in self.requests if r.path.startswith(path_prefix))

    def ranges(self) -> list[str | None]:
        with self.lock:
            return [r.range for r in self.requests if r.path.startswith("/cdn/") and r.method == "GET"]


class _Handler(BaseHTTPRequestHandler):
    hub: LoopbackHub
    server_version = "LoopbackHub/1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    # ---------------------------------------------------------- routing
    def _route(self, head: bool) -> None:
        path = urlsplit(self.path).path
        parts = [unquote(p) for p in path.split("/") if p]
        sent, status = 0, 500
        try:
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
                status = self._api("/".join(parts[2:4]), "/".join(parts[5:]))
            elif len(parts) >= 5 and parts[2] == "resolve":
                status, sent = self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
            elif parts[:1] == ["cdn"] and len(parts) >= 4:
                status, sent = self._cdn("/".join(parts[1:3]), "/".join(parts[3:]), head)
            else:
                status = self._error(404, "EntryNotFound")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a cancel, a timeout): nothing to answer
        finally:
            with self.hub.lock:
                self.hub.requests.append(LoggedRequest(self.command, path, self.headers.get("Range"), status, sent))

    def _lookup(self, repo: str, revision: str, filename: str) -> tuple[_File | None, int]:
        if repo not in self.hub.repos:
            return None, self._error(401, "RepoNotFound")
        if revision not in ("main", self.hub.commits[repo]):
            return None, self._error(404, "RevisionNotFound")
        file = self.hub.repos[repo].get(filename)
        if file is None or f"{repo}/{filename}" in self.hub.faults.missing:
            return None, self._error(404, "EntryNotFound")
        return file, 0

    def _resolve(self, repo: str, revision: str, filename: str, head: bool) -> tuple[int, int]:
        file, status = self._lookup(repo, revision, filename)
        if file is None:
            return status, 0
        commit = self.hub.commits[repo]
        if not file.lfs:
            return self._body(file, head, {"ETag": f'"{file.git_sha1}"', "X-Repo-Commit": commit})
        sha = hashlib.sha256(b"other bytes").hexdigest() if self.hub.faults.wrong_sha256 else file.sha256
        self.send_response(302)
        self.send_header("Location", f"{self.hub.url}/cdn/{repo}/{quote(filename)}?sha={file.sha256}")
        self.send_header("X-Repo-Commit", commit)
        self.send_header("X-Linked-Etag", f'"{sha}"')
        self.send_header("X-Linked-Size", str(self.hub.faults.claim_size or file.size))
        self.send_header("ETag", f'"{sha}"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return 302, 0

    def _cdn(self, repo: str, filename: str, head: bool) -> tuple[int, int]:
        file = self.hub.repos.get(repo, {}).get(filename)
        if file is None:
            return self._error(404, "EntryNotFound"), 0
        return self._body(file, head, {"ETag": f'"{file.sha256}"'})

    def _api(self, repo: str, revision: str) -> int:
        if repo not in self.hub.repos:
            return self._error(401, "RepoNotFound")
        siblings = []
        for name, file in sorted(self.hub.repos[repo].items()):
            entry = {"rfilename": name, "size": file.size, "blobId": file.git_sha1}
            if file.lfs:
                entry["lfs"] = {"sha256": file.sha256, "size": file.size, "pointerSize": 134}
            siblings.append(entry)
        body = json.dumps({"id": repo, "sha": self.hub.commits[repo], "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return 200

    def _error(self, status: int, code: str) -> int:
        body = json.dumps({"error": code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    # ---------------------------------------------------------- bytes
    def _body(self, file: _File, head: bool, extra: dict[str, str]) -> tuple[int, int]:
        start = 0
        wanted = self.headers.get("Range")
        faults = self.hub.faults
        if wanted and not faults.ignore_range and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[6:-1])
            if start >= file.size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{file.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return 416, 0
        status = 206 if start else 200
        self.send_response(status)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(file.size - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{file.size - 1}/{file.size}")
        self.end_headers()
        if head:
            return status, 0
        return status, self._stream(file, start)

    def _stream(self, file: _File, start: int) -> int:
        hub, faults = self.hub, self.hub.faults
        with hub.lock:  # decide this response's fault once, so concurrent requests count correctly
            cut = stall = None
            if faults.drop_after is not None and faults.drop_count > 0 and start <= faults.drop_after < file.size:
                cut, faults.drop_count = faults.drop_after - start, faults.drop_count - 1
            if faults.stall_after is not None and faults.stall_count > 0 and start <= faults.stall_after < file.size:
                stall, faults.stall_count = faults.stall_after - start, faults.stall_count - 1
        limit = min(x for x in (cut, stall, file.size - start) if x is not None)
        sent = 0
        reader = file.open_at(start)
        try:
            while sent < limit:
                block = reader.read(min(_CHUNK, limit - sent))
                if not block:
                    break
                self.wfile.write(block)
                sent += len(block)
            self.wfile.flush()
            if sent < file.size - start and limit == stall:
                hub.stalled.set()
                hub.release.wait(_STALL_LIMIT_S)
            if sent < file.size - start:  # a cut or the end of a stall: drop the connection mid-body
                self.connection.shutdown(socket.SHUT_RDWR)
        finally:
            reader.close()
        return sent
