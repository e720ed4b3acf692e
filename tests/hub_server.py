"""A small Hugging Face Hub for tests: the subset of the Hub HTTP API that huggingface_hub 2.4 uses.

Runs on 127.0.0.1 in a thread (``HubServer().start()``), so the real client pushes to it and pulls from it
end to end. It answers what ``create_repo``, ``create_branch``, ``create_commit``, ``upload_folder``,
``model_info`` / ``repo_info`` (sha, siblings, card data), ``list_repo_tree``, ``list_repo_refs``, the
YAML validation of a model card, and ``hf_hub_download`` / ``snapshot_download`` send, for model repos:

- ``POST /api/repos/create``; ``POST /api/models/{repo}/branch/{branch}``; ``POST /api/validate-yaml``;
- ``POST /api/models/{repo}/preupload/{rev}``: "lfs" for ``*.safetensors`` (as the repo's
  ``.gitattributes`` says) and files over 10 MB, "regular" otherwise, as the real Hub decides;
- ``POST /{repo}.git/info/lfs/objects/batch`` and the ``PUT`` it points to (git LFS "basic" transfer,
  streamed to disk), then ``POST /api/models/{repo}/commit/{rev}`` (NDJSON: header, base64 ``file``
  entries, ``lfsFile`` entries, ``deletedFile`` / ``deletedFolder``);
- ``GET /api/models/{repo}[/revision/{rev}]`` (sha, siblings with sizes, blob ids and LFS sha256 when
  ``blobs=True``, card data), ``GET /api/models/{repo}/tree/{rev}[/{path}]``, ``GET .../refs``;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with ``ETag`` (git blob id), ``X-Repo-Commit`` and, for LFS
  files, ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``.

Errors carry the ``X-Error-Code`` header the client maps to ``RepositoryNotFoundError``,
``RevisionNotFoundError`` and ``EntryNotFoundError``. Storage is content addressed: each content is one
file named by its sha256 under the server's folder; a commit is a snapshot ``{path: content}`` with its
parent and message, identified by a sha1 over all of that; branches point at commits. Writes need a token
(any ``Authorization: Bearer ...``); a private repo is readable only with the token that created it.
Every Authorization header seen is recorded in ``authorizations``.

``client_pointed_at(endpoint, cache, token)`` points an already imported huggingface_hub at the server
(legacy LFS uploads: the Xet protocol is switched off). Test hooks: ``corrupt(repo_id, path, data)``
serves other bytes for one file than its listing reports (a broken transfer or mirror).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
LFS_PATTERNS = ("*.safetensors",)
LFS_SIZE = 10 * 1024 * 1024
CHUNK = 1 << 20


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as ``oid`` / ``ETag`` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git LFS pointer file that stands for a large file in the git tree."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    """One stored content: its sha256 (its name on disk), size and git blob id."""

    sha256: str
    size: int
    git_oid: str


@dataclass(frozen=True)
class Entry:
    """A file in a commit: its content, and whether git holds it through an LFS pointer."""

    sha256: str
    lfs: bool


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Entry]
    summary: str
    description: str
    date: str


@dataclass
class Repo:
    repo_id: str
    owner_token: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid


class HubError(Exception):
    """An HTTP error answer: status, ``X-Error-Code`` and message."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


class BlobStore:
    """Contents on disk, one file per sha256; written through a temporary file, never half."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.known: dict[str, Blob] = {}
        self.lock = threading.Lock()

    def put(self, data: bytes) -> Blob:
        with tempfile.NamedTemporaryFile(dir=self.root, delete=False) as handle:
            handle.write(data)
        return self._register(Path(handle.name), hashlib.sha256(data).hexdigest(), len(data))

    def put_stream(self, stream, length: int) -> Blob:
        digest = hashlib.sha256()
        left = length
        with tempfile.NamedTemporaryFile(dir=self.root, delete=False) as handle:
            while left > 0:
                chunk = stream.read(min(CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                handle.write(chunk)
                left -= len(chunk)
        return self._register(Path(handle.name), digest.hexdigest(), length - left)

    def _register(self, temporary: Path, sha256: str, size: int) -> Blob:
        git = hashlib.sha1(b"blob %d\0" % size)
        with temporary.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                git.update(chunk)
        blob = Blob(sha256, size, git.hexdigest())
        with self.lock:
            temporary.replace(self.root / sha256)
            self.known[sha256] = blob
        return blob

    def read(self, sha256: str) -> bytes:
        return (self.root / sha256).read_bytes()

    def path(self, sha256: str) -> Path:
        return self.root / sha256


class HubState:
    """Repos, commits and blobs; the request handlers run under ``lock`` (LFS uploads stream outside it)."""

    def __init__(self, root: Path) -> None:
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.commits: dict[str, Commit] = {}
        self.blobs = BlobStore(root / "blobs")
        self.overrides: dict[tuple[str, str], bytes] = {}  # (repo_id, path) -> bytes served instead
        self.clock = 0

    def new_commit(self, parent: str | None, files: dict[str, Entry], summary: str, description: str) -> str:
        self.clock += 1
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_700_000_000 + self.clock))
        listing = sorted((path, entry.sha256, entry.lfs) for path, entry in files.items())
        oid = hashlib.sha1(json.dumps([parent, listing, summary, description, date]).encode()).hexdigest()
        self.commits[oid] = Commit(oid, parent, dict(files), summary, description, date)
        return oid

    def repo(self, repo_id: str, token: str | None, write: bool = False) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and token != repo.owner_token):
            raise HubError(404, "RepoNotFound", f"Repository {repo_id} not found")
        if write and token is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        oid = repo.branches.get(revision)
        if oid is None and re.fullmatch(r"[0-9a-f]{40}", revision) and self._reachable(repo, revision):
            oid = revision
        if oid is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return self.commits[oid]

    def _reachable(self, repo: Repo, oid: str) -> bool:
        for head in repo.branches.values():
            cursor: str | None = head
            while cursor is not None:
                if cursor == oid:
                    return True
                cursor = self.commits[cursor].parent
        return False

    def entry(self, commit: Commit, path: str) -> Entry:
        if path not in commit.files:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {commit.oid}", commit=commit.oid)
        return commit.files[path]

    def listing(self, path: str, entry: Entry) -> dict:
        """The tree entry of a file, as ``list_repo_tree`` receives it."""
        blob = self.blobs.known[entry.sha256]
        if not entry.lfs:
            return {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
        pointer = lfs_pointer(blob.sha256, blob.size)
        lfs = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(pointer)}
        return {"type": "file", "oid": git_blob_id(pointer), "size": blob.size, "path": path, "lfs": lfs}


class HubServer:
    """The test Hub: ``start()`` binds 127.0.0.1 on a free port; ``endpoint`` is its base URL."""

    def __init__(self) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="test-hub-"))
        self._secret = os.urandom(16)
        self.state = HubState(self._root)
        self.authorizations: list[str] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def sign(self, oid: str, size: int) -> str:
        """The signature of an LFS upload URL (what makes it "presigned")."""
        return hmac.new(self._secret, f"{oid}:{size}".encode(), hashlib.sha256).hexdigest()

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "the server is not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
        shutil.rmtree(self._root, ignore_errors=True)

    # -- test hooks ---------------------------------------------------------------------------------
    def corrupt(self, repo_id: str, path: str, data: bytes) -> None:
        """Serve ``data`` for ``path`` (every revision) while listings keep reporting the real file."""
        with self.state.lock:
            self.state.overrides[(repo_id, path)] = data

    def paths(self, repo_id: str, revision: str = "main") -> dict[str, Entry]:
        with self.state.lock:
            return dict(self.state.resolve(self.state.repos[repo_id], revision).files)

    def read(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        return self.state.blobs.read(self.paths(repo_id, revision)[path].sha256)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision, as stored (read whole: for small repos)."""
        return {path: self.state.blobs.read(e.sha256) for path, e in self.paths(repo_id, revision).items()}

    def head(self, repo_id: str, branch: str = "main") -> str:
        with self.state.lock:
            return self.state.repos[repo_id].branches[branch]

    def history(self, repo_id: str, branch: str = "main") -> list[Commit]:
        """Commits of a branch, newest first."""
        with self.state.lock:
            cursor: str | None = self.state.repos[repo_id].branches[branch]
            commits = []
            while cursor is not None:
                commits.append(self.state.commits[cursor])
                cursor = self.state.commits[cursor].parent
            return commits


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    # -- plumbing -----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.token = self._token()
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        try:
            if method == "PUT" and parts[:1] == ["lfs-upload"]:  # streamed, outside the lock
                return self._lfs_upload(parts[1:])
            self.body = (
                self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
            )
            with self.hub.state.lock:
                self._route(method, parts)
        except HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code:
                headers["X-Error-Code"] = error.code
            if error.commit:
                headers["X-Repo-Commit"] = error.commit
            self._send(error.status, {"error": error.message}, headers)

    def _token(self) -> str | None:
        value = self.headers.get("Authorization")
        if value:
            self.hub.authorizations.append(value)
        return value.removeprefix("Bearer ").strip() if value and value.startswith("Bearer ") else None

    def _send(self, status: int, payload: object = None, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as error:
            raise HubError(400, None, f"invalid JSON body: {error}") from None

    # -- routing ------------------------------------------------------------------------------------
    def _route(self, method: str, parts: list[str]) -> None:
        if parts == ["api", "repos", "create"] and method == "POST":
            return self._create_repo()
        if parts == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._api(method, "/".join(parts[2:4]), parts[4:])
        if len(parts) == 6 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(f"{parts[0]}/{parts[1].removesuffix('.git')}")
        if len(parts) >= 4 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        raise HubError(404, None, f"the test Hub does not serve {method} /{'/'.join(parts)}")

    def _api(self, method: str, repo_id: str, rest: list[str]) -> None:
        action = rest[0] if rest else ""
        routes = {
            ("GET", ""): lambda: self._info(repo_id, "main"),
            ("GET", "revision"): lambda: self._info(repo_id, rest[1]),
            ("GET", "tree"): lambda: self._tree(repo_id, rest[1], "/".join(rest[2:])),
            ("GET", "refs"): lambda: self._refs(repo_id),
            ("POST", "preupload"): lambda: self._preupload(repo_id, rest[1]),
            ("POST", "commit"): lambda: self._commit(repo_id, rest[1]),
            ("POST", "branch"): lambda: self._create_branch(repo_id, rest[1]),
        }
        route = routes.get((method, action))
        if route is None or (action and len(rest) < 2):
            raise HubError(
                404, None, f"the test Hub does not serve {method} /api/models/{repo_id}/{'/'.join(rest)}"
            )
        route()

    # -- repos and branches -------------------------------------------------------------------------
    def _create_repo(self) -> None:
        state = self.hub.state
        if self.token is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        payload = self._json()
        if payload.get("type", "model") != "model":
            raise HubError(400, None, "the test Hub holds model repos only")
        repo_id = f"{payload.get('organization') or 'tester'}/{payload['name']}"
        url = f"{self.hub.endpoint}/{repo_id}"
        if (
            repo_id in state.repos
        ):  # the real Hub's 409 also carries the url (create_repo(exist_ok=True) reads it)
            self._send(409, {"error": "You already created this model repo", "url": url})
            return
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = Repo(repo_id, self.token, private)
        attributes = Entry(state.blobs.put(GITATTRIBUTES).sha256, lfs=False)
        repo.branches["main"] = state.new_commit(None, {".gitattributes": attributes}, "initial commit", "")
        state.repos[repo_id] = repo
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _create_branch(self, repo_id: str, branch: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token, write=True)
        if branch in repo.branches:
            raise HubError(409, None, f"Reference refs/heads/{branch} already exists")
        start = self._json().get("startingPoint") or "main"
        repo.branches[branch] = state.resolve(repo, start).oid
        self._send(200, {})

    def _validate_yaml(self) -> None:
        content = self._json().get("content", "")
        errors = []
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.DOTALL)
        if match:
            try:
                metadata = yaml.safe_load(match.group(1))
            except yaml.YAMLError as error:
                metadata, errors = None, [{"message": f"YAML: {error}"}]
            if metadata is not None and not isinstance(metadata, dict):
                errors.append({"message": "metadata must be a YAML mapping"})
            elif isinstance(metadata, dict):
                errors += _metadata_errors(metadata)
        self._send(400 if errors else 200, {"errors": errors, "warnings": []})

    # -- reading ------------------------------------------------------------------------------------
    def _info(self, repo_id: str, revision: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token)
        commit = state.resolve(repo, revision)
        with_blobs = self.query.get("blobs") in ("True", "true", "1")
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict = {"rfilename": path}
            if with_blobs:
                listed = state.listing(path, entry)
                sibling.update(size=listed["size"], blobId=listed["oid"])
                if entry.lfs:
                    lfs = listed["lfs"]
                    sibling["lfs"] = {
                        "sha256": lfs["oid"],
                        "size": lfs["size"],
                        "pointerSize": lfs["pointerSize"],
                    }
            siblings.append(sibling)
        readme = commit.files.get("README.md")
        card = _card_data(state.blobs.read(readme.sha256)) if readme else None
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": list((card or {}).get("tags") or []),
            "siblings": siblings,
        }
        if card:
            info["cardData"] = card
            info.update({key: card[key] for key in ("library_name", "pipeline_tag") if key in card})
        self._send(200, info)

    def _tree(self, repo_id: str, revision: str, folder: str) -> None:
        state = self.hub.state
        commit = state.resolve(state.repo(repo_id, self.token), revision)
        recursive = self.query.get("recursive") in ("True", "true", "1")
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries: dict[str, dict] = {}
        for path, entry in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):  # the folders on the way
                name = prefix + "/".join(parts[:depth])
                oid = hashlib.sha1(f"{commit.oid}:{name}".encode()).hexdigest()
                entries.setdefault(name, {"type": "directory", "oid": oid, "path": name})
            if len(parts) == 1 or recursive:
                entries[path] = state.listing(path, entry)
        if prefix and not entries:
            raise HubError(
                404, "EntryNotFound", f"{folder} does not exist on {commit.oid}", commit=commit.oid
            )
        self._send(200, [entries[name] for name in sorted(entries)])

    def _refs(self, repo_id: str) -> None:
        repo = self.hub.state.repo(repo_id, self.token)
        branches = [
            {"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid} for n, oid in repo.branches.items()
        ]
        self._send(200, {"branches": branches, "converts": [], "tags": []})

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        state = self.hub.state
        commit = state.resolve(state.repo(repo_id, self.token), revision)
        entry = state.entry(commit, path)
        listed = state.listing(path, entry)
        headers = {"ETag": f'"{listed["oid"]}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(listed["size"])})
        override = state.overrides.get((repo_id, path))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        size = listed["size"] if self.command == "HEAD" or override is None else len(override)
        self.send_header("Content-Length", str(size))  # HEAD: the listing's size; a broken body shows in GET
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if override is not None:
            self.wfile.write(override)
            return
        with state.blobs.path(entry.sha256).open("rb") as handle:
            shutil.copyfileobj(handle, self.wfile, CHUNK)

    # -- writing ------------------------------------------------------------------------------------
    def _preupload(self, repo_id: str, revision: str) -> None:
        state = self.hub.state
        commit = state.resolve(state.repo(repo_id, self.token, write=True), revision)
        files = []
        for item in self._json().get("files", []):
            path, size = item["path"], int(item.get("size") or 0)
            lfs = size >= LFS_SIZE or any(fnmatch.fnmatch(path, pattern) for pattern in LFS_PATTERNS)
            entry = commit.files.get(path)
            oid = None
            if entry is not None:  # lets the client skip unchanged files: sha256 for LFS, git blob id else
                oid = entry.sha256 if lfs else state.blobs.known[entry.sha256].git_oid
            mode = "lfs" if lfs else "regular"
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send(200, {"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, repo_id: str) -> None:
        state = self.hub.state
        state.repo(repo_id, self.token, write=True)
        payload = self._json()
        if payload.get("operation") != "upload":
            raise HubError(400, None, "the test Hub's LFS batch endpoint takes uploads only")
        objects = []
        for item in payload.get("objects", []):
            oid, size = item["oid"], int(item["size"])
            answer = {"oid": oid, "size": size}
            if oid not in state.blobs.known:
                href = f"{self.hub.endpoint}/lfs-upload/{oid}/{size}?signature={self.hub.sign(oid, size)}"
                answer["actions"] = {"upload": {"href": href}}  # a presigned URL: the PUT carries no token
            objects.append(answer)
        self._send(200, {"transfer": "basic", "objects": objects})

    def _lfs_upload(self, parts: list[str]) -> None:
        oid, size = (parts[0], int(parts[1])) if len(parts) == 2 else ("", -1)
        if not hmac.compare_digest(self.query.get("signature", ""), self.hub.sign(oid, size)):
            self.close_connection = True  # the body is not read
            raise HubError(403, None, "the upload URL's signature is not valid")
        length = int(self.headers.get("Content-Length") or -1)
        if length != size:
            raise HubError(400, None, f"LFS upload of {oid}: Content-Length {length}, expected {size}")
        blob = self.hub.state.blobs.put_stream(self.rfile, length)
        if (blob.sha256, blob.size) != (oid, size):
            raise HubError(
                400, None, f"LFS upload of {oid}: received sha256 {blob.sha256}, {blob.size} bytes"
            )
        self._send(200, {})

    def _commit(self, repo_id: str, revision: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token, write=True)
        if revision not in repo.branches:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to a branch)")
        head = state.commits[repo.branches[revision]]
        files = dict(head.files)
        header: dict = {}
        for line in self.body.splitlines():
            if line.strip():
                header = self._apply(json.loads(line), files) or header
        parent = header.get("parentCommit")
        if parent is not None and parent != head.oid:
            raise HubError(412, None, f"A commit has happened since {parent}; the head is {head.oid}")
        oid = state.new_commit(head.oid, files, header.get("summary", ""), header.get("description", ""))
        repo.branches[revision] = oid
        url = f"{self.hub.endpoint}/{repo_id}/commit/{oid}"
        self._send(200, {"success": True, "commitOid": oid, "commitUrl": url, "pullRequestUrl": None})

    def _apply(self, item: dict, files: dict[str, Entry]) -> dict | None:
        """Apply one NDJSON line of a commit to ``files``; returns the header line's value."""
        key, value = item.get("key"), item.get("value", {})
        if key == "header":
            return value
        if key == "file":
            if value.get("encoding") != "base64":
                raise HubError(400, None, f"{value.get('path')}: only base64 file entries are supported")
            files[_clean_path(value["path"])] = Entry(
                self.hub.state.blobs.put(base64.b64decode(value["content"])).sha256, False
            )
        elif key == "lfsFile":
            if value.get("oid") not in self.hub.state.blobs.known:
                raise HubError(
                    400, None, f"{value.get('path')}: LFS object {value.get('oid')} was never uploaded"
                )
            files[_clean_path(value["path"])] = Entry(value["oid"], True)
        elif key == "deletedFile":
            if files.pop(_clean_path(value["path"]), None) is None:
                raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
        elif key == "deletedFolder":
            folder = _clean_path(value["path"]).rstrip("/") + "/"
            for path in [p for p in files if p.startswith(folder)]:
                del files[path]
        else:
            raise HubError(400, None, f"unknown commit entry {key!r}")
        return None


def _clean_path(path: str) -> str:
    path = path.lstrip("/")
    if not path or ".." in path.split("/"):
        raise HubError(400, None, f"invalid path in repo: {path!r}")
    return path


def _card_data(readme: bytes) -> dict | None:
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme.decode("utf-8", "replace"), re.DOTALL)
    if not match:
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _metadata_errors(metadata: dict) -> list[dict]:
    """The checks of the real validator that a card generator can get wrong."""
    errors = []
    for key in ("tags", "datasets", "base_model"):
        value = metadata.get(key)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            errors.append({"message": f'"{key}" must be a string or an array of strings'})
    for key in ("license", "library_name", "pipeline_tag"):
        if key in metadata and not isinstance(metadata[key], str):
            errors.append({"message": f'"{key}" must be a string'})
    index = metadata.get("model-index")
    if index is not None and not (isinstance(index, list) and all("results" in m for m in index)):
        errors.append({"message": '"model-index" must be an array of models with "results"'})
    return errors


@contextmanager
def client_pointed_at(endpoint: str, cache: Path, token: str | None) -> Iterator[pytest.MonkeyPatch]:
    """Point huggingface_hub (already imported, so its import-time constants are patched too) at ``endpoint``
    with the cache in ``cache``, online, with ``token``, uploading large files through git LFS (this server
    does not speak the Xet protocol); the environment is set for subprocesses as well."""
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "ENDPOINT", endpoint)
        patch.setattr(
            constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        )
        patch.setattr(constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {urlsplit(endpoint).hostname})
        patch.setattr(constants, "HF_HUB_OFFLINE", False)
        patch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        patch.setattr(constants, "HF_HUB_CACHE", str(cache))
        environment = {
            "HF_ENDPOINT": endpoint,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_CACHE": str(cache),
        }
        for key, value in environment.items():
            patch.setenv(key, value)
        if token is None:
            patch.delenv("HF_TOKEN", raising=False)
        else:
            patch.setenv("HF_TOKEN", token)
        yield patch
