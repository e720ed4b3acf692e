"""A small Hugging Face Hub for tests: the subset of the Hub HTTP API that huggingface_hub 2.4 uses.

Runs on 127.0.0.1 in a thread (``HubServer().start()``), so the real client pushes to it and pulls from it
end to end. It implements what ``create_repo``, ``create_branch``, ``create_commit`` (preupload answering
"regular", then the NDJSON commit: header, base64 file entries, deletions), ``model_info`` /
``repo_info`` (sha, siblings, card data), ``list_repo_tree``, ``list_repo_refs``, ``ModelCard``'s
``validate-yaml`` and ``hf_hub_download`` / ``snapshot_download`` (``HEAD``/``GET /{repo}/resolve/{rev}/{path}``
with ``ETag`` and ``X-Repo-Commit``) send, for model repos. Errors carry the ``X-Error-Code`` header the
client maps to ``RepositoryNotFoundError``, ``RevisionNotFoundError`` and ``EntryNotFoundError``.

Storage is content addressed: file contents are kept once per sha256; a commit is a snapshot
``{path: sha256}`` with its parent and message, identified by a sha1 over all of that; branches point at
commits. Writes need a token (any ``Authorization: Bearer ...``); a private repo is readable only with
the token that created it. Every Authorization header seen is recorded in ``authorizations``.

Test hooks: ``corrupt(repo_id, path, data)`` serves other bytes for one file than its listing reports
(a broken transfer or mirror); ``stop()`` takes the Hub away (no network).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as ``oid`` / ``ETag`` of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, str]  # path -> sha256 of the content
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


class HubState:
    """Repos, commits and content-addressed blobs; every method runs under one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.commits: dict[str, Commit] = {}
        self.blobs: dict[str, bytes] = {}
        self.overrides: dict[tuple[str, str], bytes] = {}  # (repo_id, path) -> bytes served instead
        self.clock = 0

    # -- storage ------------------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(digest, data)
        return digest

    def new_commit(self, parent: str | None, files: dict[str, str], summary: str, description: str) -> str:
        self.clock += 1
        date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_700_000_000 + self.clock))
        body = json.dumps([parent, sorted(files.items()), summary, description, date]).encode()
        oid = hashlib.sha1(body).hexdigest()
        self.commits[oid] = Commit(oid, parent, dict(files), summary, description, date)
        return oid

    # -- lookups ------------------------------------------------------------------------------------
    def repo(self, repo_id: str, token: str | None, write: bool = False) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and token != repo.owner_token):
            raise HubError(404, "RepoNotFound", f"Repository {repo_id} not found")
        if write and token is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return repo

    def resolve(self, repo: Repo, revision: str) -> Commit:
        oid = repo.branches.get(revision)
        if oid is None and re.fullmatch(r"[0-9a-f]{40}", revision) and revision in self.commits:
            oid = revision if self._reachable(repo, revision) else None
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

    def content(self, repo: Repo, commit: Commit, path: str) -> bytes:
        if path not in commit.files:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {commit.oid}", commit=commit.oid)
        return self.blobs[commit.files[path]]


class HubServer:
    """The test Hub: ``start()`` binds 127.0.0.1 on a free port; ``endpoint`` is its base URL."""

    def __init__(self) -> None:
        self.state = HubState()
        self.authorizations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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

    # -- test hooks ---------------------------------------------------------------------------------
    def corrupt(self, repo_id: str, path: str, data: bytes) -> None:
        """Serve ``data`` for ``path`` (every revision) while listings keep reporting the real file."""
        with self.state.lock:
            self.state.overrides[(repo_id, path)] = data

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision, as stored."""
        with self.state.lock:
            repo = self.state.repos[repo_id]
            commit = self.state.resolve(repo, revision)
            return {path: self.state.blobs[digest] for path, digest in commit.files.items()}

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

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        self.token = self._token()
        self.hub.requests.append((method, url.path))
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        try:
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

    def _send(
        self, status: int, payload: object = None, headers: dict | None = None, raw: bytes | None = None
    ):
        body = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/octet-stream" if raw is not None else "application/json"
        )
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
        if parts[:2] == ["api", "repos"] and parts[2:] == ["create"] and method == "POST":
            return self._create_repo()
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            return self._validate_yaml()
        if parts[:2] == ["api", "whoami-v2"]:
            return self._whoami()
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._api(method, "/".join(parts[2:4]), parts[4:])
        if len(parts) >= 4 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        raise HubError(404, None, f"the test Hub does not serve {method} /{'/'.join(parts)}")

    def _api(self, method: str, repo_id: str, rest: list[str]) -> None:
        action = rest[0] if rest else ""
        if method == "GET" and action == "":
            return self._info(repo_id, "main")
        if method == "GET" and action == "revision" and len(rest) == 2:
            return self._info(repo_id, rest[1])
        if method == "GET" and action == "tree" and len(rest) >= 2:
            return self._tree(repo_id, rest[1], "/".join(rest[2:]))
        if method == "GET" and action == "refs":
            return self._refs(repo_id)
        if method == "POST" and action == "preupload" and len(rest) == 2:
            return self._preupload(repo_id, rest[1])
        if method == "POST" and action == "commit" and len(rest) == 2:
            return self._commit(repo_id, rest[1])
        if method == "POST" and action == "branch" and len(rest) == 2:
            return self._create_branch(repo_id, rest[1])
        raise HubError(
            404, None, f"the test Hub does not serve {method} /api/models/{repo_id}/{'/'.join(rest)}"
        )

    # -- endpoints ----------------------------------------------------------------------------------
    def _whoami(self) -> None:
        if self.token is None:
            raise HubError(401, None, "Invalid credentials in Authorization header")
        self._send(200, {"type": "user", "name": "tester", "orgs": [], "auth": {"type": "access_token"}})

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
        first = state.new_commit(
            None, {".gitattributes": state.put_blob(GITATTRIBUTES)}, "initial commit", ""
        )
        repo.branches["main"] = first
        state.repos[repo_id] = repo
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self) -> None:
        content = self._json().get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.DOTALL)
        errors = []
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

    def _create_branch(self, repo_id: str, branch: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token, write=True)
        if branch in repo.branches:
            raise HubError(409, None, f"Reference refs/heads/{branch} already exists")
        start = self._json().get("startingPoint") or "main"
        repo.branches[branch] = state.resolve(repo, start).oid
        self._send(200, {})

    def _info(self, repo_id: str, revision: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token)
        commit = state.resolve(repo, revision)
        with_blobs = self.query.get("blobs") in ("True", "true", "1")
        siblings = []
        for path, digest in sorted(commit.files.items()):
            sibling: dict = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(state.blobs[digest]), blobId=git_blob_id(state.blobs[digest]))
            siblings.append(sibling)
        card = _card_data(state.blobs[commit.files["README.md"]]) if "README.md" in commit.files else None
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
            for key in ("library_name", "pipeline_tag"):
                if key in card:
                    info[key] = card[key]
        self._send(200, info)

    def _tree(self, repo_id: str, revision: str, folder: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token)
        commit = state.resolve(repo, revision)
        recursive = self.query.get("recursive") in ("True", "true", "1")
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        entries: dict[str, dict] = {}
        for path, digest in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                if depth > 1 and not recursive:
                    break
                name = prefix + "/".join(parts[:depth])
                entries.setdefault(
                    name, {"type": "directory", "oid": _folder_oid(name, commit), "path": name}
                )
            if len(parts) == 1 or recursive:
                data = state.blobs[digest]
                entries[path] = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
        if prefix and not entries:
            raise HubError(
                404, "EntryNotFound", f"{folder} does not exist on {commit.oid}", commit=commit.oid
            )
        self._send(200, [entries[name] for name in sorted(entries)])

    def _refs(self, repo_id: str) -> None:
        repo = self.hub.state.repo(repo_id, self.token)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
            for name, oid in repo.branches.items()
        ]
        self._send(200, {"branches": branches, "converts": [], "tags": []})

    def _preupload(self, repo_id: str, revision: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token, write=True)
        commit = state.resolve(repo, revision)
        files = []
        for item in self._json().get("files", []):
            digest = commit.files.get(item["path"])
            oid = git_blob_id(state.blobs[digest]) if digest else None
            files.append({"path": item["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        self._send(200, {"files": files, "commitOid": commit.oid})

    def _commit(self, repo_id: str, revision: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token, write=True)
        if revision not in repo.branches:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision} (commits go to a branch)")
        head = state.commits[repo.branches[revision]]
        files = dict(head.files)
        header: dict = {}
        for line in self.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item.get("key"), item.get("value", {})
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, None, f"{value.get('path')}: only base64 file entries are supported")
                files[_clean_path(value["path"])] = state.put_blob(base64.b64decode(value["content"]))
            elif key == "deletedFile":
                if files.pop(_clean_path(value["path"]), None) is None:
                    raise HubError(
                        404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}"
                    )
            elif key == "deletedFolder":
                folder = _clean_path(value["path"]).rstrip("/") + "/"
                files = {p: d for p, d in files.items() if not p.startswith(folder)}
            else:
                raise HubError(400, None, f"the test Hub stores regular files only; got a {key!r} entry")
        parent = header.get("parentCommit")
        if parent is not None and parent != head.oid:
            raise HubError(412, None, f"A commit has happened since {parent}; the head is {head.oid}")
        oid = state.new_commit(head.oid, files, header.get("summary", ""), header.get("description", ""))
        repo.branches[revision] = oid
        url = f"{self.hub.endpoint}/{repo_id}/commit/{oid}"
        self._send(200, {"success": True, "commitOid": oid, "commitUrl": url, "pullRequestUrl": None})

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        state = self.hub.state
        repo = state.repo(repo_id, self.token)
        commit = state.resolve(repo, revision)
        data = state.content(repo, commit, path)
        etag = git_blob_id(data)
        served = state.overrides.get((repo_id, path), data)
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if self.command == "HEAD":  # the listing's size: a broken transfer only shows in the body
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self._send(200, headers=headers, raw=served)


def _clean_path(path: str) -> str:
    path = path.lstrip("/")
    if not path or ".." in path.split("/"):
        raise HubError(400, None, f"invalid path in repo: {path!r}")
    return path


def _folder_oid(name: str, commit: Commit) -> str:
    return hashlib.sha1(f"{commit.oid}:{name}".encode()).hexdigest()


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
