"""A small Hugging Face Hub-compatible HTTP server for tests: standard library only, in memory, on 127.0.0.1.

The real `huggingface_hub` (2.4) and `datasets` (5.2) clients work against it when pointed at `server.url`
(`HfApi(endpoint=server.url, token=...)`, or `HF_ENDPOINT` set before they are imported). Two modes:
  - regular (default): preupload always answers `"uploadMode": "regular"`, so no LFS or Xet is involved;
  - `lfs=True`, as the Hub: preupload answers `"lfs"` for names matching an LFS pattern of `.gitattributes`
    (*.parquet, *.arrow, *.tar) or files of 10 MiB and more; the Git LFS batch API gives an upload action
    only for objects it lacks; PUT stores them (sha256 and size checked); `lfsFile` commit lines; listings,
    paths-info and `?blobs=true` siblings carry `lfs` fields and the pointer's blob id; resolve answers 302 to
    the object on a second port (another origin, like the Hub's CDN) with `X-Linked-Etag`/`X-Linked-Size`.
    The client takes that path with `HF_HUB_DISABLE_XET` (HubRemote(transfer="lfs")); with Xet on it asks
    `xet-write-token`, which answers `xet_token_status` (503 by default): there is no Xet storage here.
It follows the Hub's HTTP API as those clients call it (the routes, JSON shapes, status codes and error
headers listed below), so the tests go through the clients' real request, retry and error paths.

Endpoints (`T` is `datasets`, `models` or `spaces`; `{repo}` is `ns/name`; `{rev}` is a branch, tag,
`refs/heads/x`, `refs/tags/x`, full sha or a unique sha prefix of 7+ characters, percent-encoded):
    GET    /api/agent-harnesses                   {"standardEnvVars": [], "harnesses": {}} (never needs a token)
    GET    /api/whoami-v2                         {"name": <user>, "type": "user", ...}
    POST   /api/repos/create                      JSON {name, organization, type, private|visibility} -> {"url"};
                                                  409 with {"error", "url"} when it exists (exist_ok relies on it)
    POST   /api/validate-yaml                     {"errors": [{"message"}…], "warnings": []}: card_problems()
    GET    /api/T/{repo}[/revision/{rev}]         {"id", "sha", "private", "lastModified", "siblings": [{"rfilename"}]};
                                                  with ?blobs=true siblings also carry "size" and "blobId"
    POST   /api/T/{repo}/preupload/{rev}          {"files": [{"path", "uploadMode": "regular", "shouldIgnore": false,
                                                  "oid": <blob sha of the file at rev, or null>}]}
    POST   /api/T/{repo}/commit/{branch}          NDJSON lines: header (summary, description, parentCommit), file
                                                  (base64), lfsFile (lfs mode), deletedFile, deletedFolder ->
                                                  {"commitOid", "commitUrl"}; 412 when the head does not start
                                                  with parentCommit; 400 for ?create_pr=1 and for a README.md whose
                                                  YAML header the Hub would refuse (card_problems)
    GET    /api/T/{repo}/refs                     {"branches", "tags", "converts"} (+ "pullRequests": []); datasets
                                                  have refs/convert/parquet, as on the Hub
    POST   /api/T/{repo}/branch/{branch}          JSON {"startingPoint"?} -> {}; 409 when it exists
    DELETE /api/T/{repo}/branch/{branch}          {}; 404 when missing, 403 for main
    POST   /api/T/{repo}/tag/{rev}                JSON {"tag", "message"?} tags {rev} -> {}; 409 when the tag exists
    DELETE /api/T/{repo}/tag/{tag}                {}; 404 when missing
    GET    /api/T/{repo}/tree/{rev}[/{path}]      list of {"type": "file", "path", "oid", "size"} and
                                                  {"type": "directory", "path", "oid"}; ?recursive=true walks down;
                                                  404 EntryNotFound for a missing directory; pages of
                                                  `page_size` (1000) with a Link rel="next" header
    POST   /api/T/{repo}/paths-info/{rev}         form-encoded paths=...&paths=... -> the same entries, missing left out
    GET    /api/T/{repo}/commits/{rev}            newest first: [{"id", "title", "message", "authors", "date"}],
                                                  paged like tree
    HEAD   /[datasets/|spaces/]{repo}/resolve/{rev}/{file}   X-Repo-Commit, ETag "<git blob sha1>", Content-Length
    GET    (same)                                 the bytes; `Range: bytes=a-b` -> 206 + Content-Range (416 if beyond)
    POST   /[datasets/]{repo}.git/info/lfs/objects/batch   (lfs mode) upload actions for missing objects
    PUT    /lfs-upload/T/{repo}/{sha256}/{size}   (lfs mode) the object's bytes; no token (a presigned URL)
    GET    /lfs-objects/{sha256}                  (lfs mode, second port) the object; Range as above; no token
    GET    /api/T/{repo}/xet-write-token/{rev}    `xet_token_status` with a JSON error

Errors are JSON {"error": msg} with X-Error-Message, and X-Error-Code where the client maps it to an exception:
RepoNotFound (missing repo -> RepositoryNotFoundError), RevisionNotFound, EntryNotFound (with X-Repo-Commit).
With `token` set, every request except agent-harnesses must carry `Authorization: Bearer <token>`, else 401 with
X-Error-Message "Invalid credentials in Authorization header" (a plain HfHubHTTPError, not RepositoryNotFoundError).
Repos are not access-checked beyond that: `private` is only stored and reported.

Gotchas honoured: the raw path is matched first and each captured segment unquoted afterwards (revisions and
tree paths arrive encoded with safe="", resolve filenames keep "/"); commit shas are lowercase 40-hex; a new repo
starts with a commit holding `.gitattributes`, so `main` always exists; HEAD answers carry no body and no
X-Xet-Hash; chunked request bodies are decoded; every answer has Content-Length (HTTP/1.1 keep-alive).

Test hooks on HubServer:
    inject(status, times=1, *, method=None, path_contains=None, headers=None, message=None)  the next `times`
        requests matching method and raw-path substring get `status` with a JSON error body (`message`) and
        `headers` (e.g. {"Retry-After": "1"}); with after=True the request is carried out first and only its
        reply replaced (a reply lost in transit)
    clear_faults()          drops pending faults and sets delay_seconds back to 0
    delay_seconds           seconds to sleep before answering each request
    requests, clear_log()   (method, raw path without query) of every request seen
    received, clear_received()  request body bytes by kind: "lfs" (object PUTs), "commit", "other"
    branch_head(repo_id, branch="main", repo_type="dataset"), tags(repo_id, repo_type="dataset"),
    files_at(repo_id, revision="main", repo_type="dataset") -> {path: bytes}

Standalone: `python -m dsm_assets_tests.hub_server --port 8080 [--token T]` prints the URL and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import fnmatch
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

import yaml

GITATTRIBUTES = (b"*.arrow filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"
                 b"*.tar filter=lfs diff=lfs merge=lfs -text\n")
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub stores any file this large through LFS, whatever its name
BAD_TOKEN = "Invalid credentials in Authorization header"
SHA_PREFIX = re.compile(r"[0-9a-f]{7,40}")
URL_PREFIX = {"dataset": "datasets/", "model": "", "space": "spaces/"}
_counter = itertools.count()
Handler = Callable[..., Any]


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, *, headers: dict | None = None,
                 body: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers, self.body = headers or {}, body or {}

    def reply(self) -> Reply:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return Reply(self.status, {"error": self.message, **self.body}, headers)


@dataclass
class Reply:
    status: int
    body: Any  # bytes, or anything JSON-serialisable
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    path: str = ""

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["false"])[-1].lower() in ("1", "true")


@dataclass
class Fault:
    status: int
    times: int
    method: str | None
    path_contains: str | None
    headers: dict[str, str]
    after: bool = False  # answer the fault only after doing the work: a reply lost on the way back
    message: str | None = None  # the error message (default "Injected fault: HTTP <status>")

    def error(self) -> HubError:
        return HubError(self.status, self.message or f"Injected fault: HTTP {self.status}", headers=self.headers)

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and (self.method in (None, method)) and (self.path_contains or "") in path


def blob_sha(data: bytes) -> str:
    """The id git (and the Hub) gives a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class LfsBlob(bytes):
    """A file's content stored through LFS: git holds only its pointer, listings carry an `lfs` field."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self).hexdigest()

    def pointer(self) -> bytes:
        return b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (self.sha256.encode(),
                                                                                         len(self))


def git_oid(data: bytes) -> str:
    """The git blob id of what git stores: the content, or an LFS file's pointer."""
    return blob_sha(data.pointer() if isinstance(data, LfsBlob) else data)


def lfs_patterns(files: dict[str, bytes]) -> list[str]:
    attributes = files.get(".gitattributes", b"").decode(errors="replace").splitlines()
    return [line.split()[0] for line in attributes if "filter=lfs" in line.split()[1:]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Repo:
    kind: str
    repo_id: str
    private: bool
    commits: dict[str, dict] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    lfs_oids: set[str] = field(default_factory=set)  # the LFS objects uploaded to this repo

    def __post_init__(self) -> None:
        self.branches["main"] = self.add_commit(None, {".gitattributes": GITATTRIBUTES}, "initial commit", "")

    @property
    def url_path(self) -> str:
        return URL_PREFIX[self.kind] + self.repo_id

    def add_commit(self, parent: str | None, files: dict[str, bytes], title: str, message: str) -> str:
        blobs = "".join(f"{p} {git_oid(d)}\n" for p, d in sorted(files.items()))
        seed = f"{parent}\n{next(_counter)}\n{title}\n{blobs}"
        sha = hashlib.sha1(seed.encode()).hexdigest()
        self.commits[sha] = {"parent": parent, "files": files, "title": title, "message": message, "date": _now()}
        return sha

    def resolve(self, rev: str | None) -> str:
        rev = rev or "main"
        for prefix, refs in (("refs/heads/", self.branches), ("refs/tags/", self.tags), ("", self.branches),
                             ("", self.tags)):
            if rev.startswith(prefix) and rev[len(prefix):] in refs:
                return refs[rev[len(prefix):]]
        hits = [sha for sha in self.commits if sha.startswith(rev)] if SHA_PREFIX.fullmatch(rev) else []
        if len(hits) != 1:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return hits[0]

    def files(self, rev: str | None) -> dict[str, bytes]:
        return self.commits[self.resolve(rev)]["files"]


def _file_entry(path: str, data: bytes) -> dict:
    entry = {"type": "file", "path": path, "oid": git_oid(data), "size": len(data)}
    if isinstance(data, LfsBlob):
        entry["lfs"] = {"oid": data.sha256, "size": len(data), "pointerSize": len(data.pointer())}
    return entry


def _dir_entry(path: str, files: dict[str, bytes]) -> dict:
    inside = "".join(f"{p} {git_oid(d)}\n" for p, d in sorted(files.items()) if p.startswith(f"{path}/"))
    inside = f"tree {path}\n{inside}"
    return {"type": "directory", "path": path, "oid": hashlib.sha1(inside.encode()).hexdigest()}


def _listing(files: dict[str, bytes], base: str, recursive: bool) -> list[dict]:
    root = f"{base.strip('/')}/" if base.strip("/") else ""
    under = [p for p in sorted(files) if p.startswith(root)]
    if root and not under:
        raise HubError(404, f"{base} does not exist", "EntryNotFound")
    entries: dict[str, dict] = {}
    for path in under:
        parts = path[len(root):].split("/")
        dirs = [root + "/".join(parts[:i]) for i in range(1, len(parts))]
        for d in dirs if recursive else dirs[:1]:
            entries.setdefault(d, _dir_entry(d, files))
        if recursive or len(parts) == 1:
            entries[path] = _file_entry(path, files[path])
    return [entries[k] for k in sorted(entries)]


def _apply(hub: HubServer, repo: Repo, files: dict[str, bytes], key: str, value: dict) -> None:
    path = value.get("path", "")
    if key == "file":
        content = value["content"]
        files[path] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
    elif key == "lfsFile" and hub.lfs:
        stored = hub.lfs_objects.get(value.get("oid", "")) if value.get("oid") in repo.lfs_oids else None
        if stored is None or len(stored) != value.get("size"):
            raise HubError(422, f"{path}: LFS object {value.get('oid')} was never uploaded")
        files[path] = stored
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise HubError(404, f"{path} does not exist", "EntryNotFound")
    elif key == "deletedFolder":
        for p in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
            del files[p]
    elif key != "header":
        raise HubError(400, f"'{key}' operations are not supported by this test server in this mode")


def card_problems(card: str) -> list[str]:
    """What the Hub's metadata check refuses in a card's YAML header (the part dsm_assets writes: the
    header itself, `configs` as `datasets` reads them, `tags`); [] when it would accept it."""
    if not card.startswith("---\n"):
        return []
    header, sep, _ = card[4:].partition("\n---")
    if not sep:
        return ["the YAML header is not closed by ---"]
    try:
        meta = yaml.safe_load(header)
    except yaml.YAMLError as exc:
        return [f"not valid YAML ({str(exc).splitlines()[0]})"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["the YAML header must be a mapping"]
    problems = [] if isinstance(meta.get("tags", []), list) else ["tags must be a list"]
    configs = meta.get("configs", [])
    if not isinstance(configs, list):
        return [*problems, "configs must be a list"]
    for i, config in enumerate(configs):
        if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
            problems.append(f"configs[{i}] needs a config_name")
        elif not _data_files_ok(config.get("data_files")):
            problems.append(f"configs[{i}].data_files must be a path, a list of paths or of {{split, path}}")
    return problems


def _data_files_ok(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("split"), str)
                                      and isinstance(v.get("path"), str | list)) for v in value)


def _validate_yaml(hub: HubServer, req: Request) -> Any:
    return {"errors": [{"message": m} for m in card_problems(req.json().get("content", ""))], "warnings": []}


def _create_repo(hub: HubServer, req: Request) -> Any:
    spec = req.json()
    kind, repo_id = spec.get("type") or "model", f"{spec.get('organization') or hub.user}/{spec['name']}"
    url = f"{hub.url}/{URL_PREFIX[kind]}{repo_id}"
    if (kind, repo_id) in hub.repos:
        raise HubError(409, f"You already created this {kind} repo", body={"url": url})
    private = bool(spec.get("private")) or spec.get("visibility") == "private"
    hub.repos[kind, repo_id] = Repo(kind, repo_id, private)
    return {"url": url, "name": repo_id}


def _repo_info(hub: HubServer, req: Request, repo: Repo, rev: str | None = None) -> Any:
    sha = repo.resolve(rev)
    blobs = req.flag("blobs")
    siblings = [{"rfilename": p, **(_sibling_blob(d) if blobs else {})}
                for p, d in sorted(repo.commits[sha]["files"].items())]
    return {"id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": sha, "private": repo.private,
            "disabled": False, "gated": False, "lastModified": repo.commits[sha]["date"], "tags": [],
            "siblings": siblings}


def _sibling_blob(data: bytes) -> dict:
    out = {"size": len(data), "blobId": git_oid(data)}
    if isinstance(data, LfsBlob):
        out["lfs"] = {"size": len(data), "sha256": data.sha256, "pointerSize": len(data.pointer())}
    return out


def _preupload(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
    """Regular for everything, or in LFS mode by the Hub's rules: an LFS pattern of .gitattributes, or large."""
    current, answers = repo.files(rev), []
    for f in req.json().get("files", []):
        path, old = f["path"], current.get(f["path"])
        lfs = hub.lfs and (f.get("size", 0) >= LFS_MIN_SIZE
                           or any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], p) for p in lfs_patterns(current)))
        oid = None if old is None else (hashlib.sha256(old).hexdigest() if lfs else blob_sha(old))
        answers.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
    return {"files": answers}


def _lfs_batch(hub: HubServer, req: Request, repo: Repo) -> Any:
    """The Git LFS batch API: an upload action only for the objects the server does not hold yet."""
    spec = req.json()
    if spec.get("operation") != "upload" or not hub.lfs:
        raise HubError(400, "only LFS uploads are supported by this test server")
    objects = []
    for obj in spec.get("objects", []):
        entry = {"oid": obj["oid"], "size": obj["size"]}
        if obj["oid"] not in repo.lfs_oids:  # each repo's LFS store is its own, as on the Hub
            href = f"{hub.url}/lfs-upload/{repo.kind}s/{repo.repo_id}/{obj['oid']}/{obj['size']}"
            entry["actions"] = {"upload": {"href": href}}
        objects.append(entry)
    return Reply(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})


def _lfs_upload(hub: HubServer, req: Request, repo: Repo, oid: str, size: str) -> Any:
    if hashlib.sha256(req.body).hexdigest() != oid or len(req.body) != int(size):
        raise HubError(400, f"LFS upload of {oid}: content does not match its oid and size")
    hub.lfs_objects[oid] = LfsBlob(req.body)
    repo.lfs_oids.add(oid)
    return {}


def _lfs_object(hub: HubServer, req: Request, oid: str) -> Any:
    """The "CDN": where resolve redirects an LFS file (another origin, so the client drops its token)."""
    data = hub.lfs_objects.get(oid)
    if data is None:
        raise HubError(404, f"no LFS object {oid}")
    return _bytes_reply(req, data, {"ETag": f'"{oid}"'})


def _xet_write_token(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
    raise HubError(hub.xet_token_status, "Xet storage is not available on this test server")


def _commit(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
    if req.flag("create_pr"):
        raise HubError(400, "Pull requests are not supported by this test server")
    branch = rev.removeprefix("refs/heads/")
    if branch not in repo.branches:
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
    lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
    header = next((line["value"] for line in lines if line["key"] == "header"), {})
    head = repo.branches[branch]
    if header.get("parentCommit") and not head.startswith(header["parentCommit"].lower()):
        raise HubError(412, "A commit has happened since. Please refresh and try again.")
    files = dict(repo.commits[head]["files"])
    for line in lines:
        _apply(hub, repo, files, line["key"], line["value"])
    if "README.md" in files and (problems := card_problems(files["README.md"].decode(errors="replace"))):
        raise HubError(400, f"Invalid metadata in README.md: {'; '.join(problems)}")
    sha = repo.branches[branch] = repo.add_commit(head, files, header.get("summary", ""),
                                                  header.get("description", ""))
    return {"commitOid": sha, "commitUrl": f"{hub.url}/{repo.url_path}/commit/{sha}", "success": True}


def _refs(hub: HubServer, req: Request, repo: Repo) -> Any:
    def refs(kind: str, named: dict[str, str]) -> list[dict]:
        return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha} for n, sha in sorted(named.items())]

    # datasets on the Hub also carry refs/convert/parquet (its automatic parquet export): not a tag
    converts = refs("convert", {"parquet": repo.branches["main"]}) if repo.kind == "dataset" else []
    out = {"branches": refs("heads", repo.branches), "tags": refs("tags", repo.tags), "converts": converts}
    return {**out, "pullRequests": []} if req.flag("include_prs") else out


def _create_branch(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
    if rev in repo.branches:
        raise HubError(409, f"Reference refs/heads/{rev} already exists")
    repo.branches[rev] = repo.resolve(req.json().get("startingPoint"))
    return {}


def _create_tag(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
    tag = req.json()["tag"]
    if tag in repo.tags:
        raise HubError(409, f"Reference refs/tags/{tag} already exists")
    repo.tags[tag] = repo.resolve(rev)
    return {}


def _delete_ref(kind: str) -> Handler:
    def delete(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
        if kind == "branches" and rev == "main":
            raise HubError(403, "Cannot delete the default branch")
        if getattr(repo, kind).pop(rev, None) is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return {}

    return delete


def _tree(hub: HubServer, req: Request, repo: Repo, rev: str, path: str | None = None) -> Any:
    return _paged(hub, req, _listing(repo.files(rev), path or "", req.flag("recursive")))


def _paged(hub: HubServer, req: Request, items: list) -> Reply:
    """One page of `items` (hub.page_size from ?cursor=), with `Link: <next>; rel="next"` as the Hub sends."""
    start = int(req.query.get("cursor", ["0"])[-1] or 0)
    end = start + hub.page_size
    headers = {}
    if end < len(items):
        query = urlencode({**{k: v[-1] for k, v in req.query.items()}, "cursor": end})
        headers["Link"] = f'<{hub.url}{req.path}?{query}>; rel="next"'
    return Reply(200, items[start:end], headers)


def _paths_info(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
    files = repo.files(rev)
    wanted = [p.strip("/") for p in parse_qs(req.body.decode()).get("paths", [])]
    return [_file_entry(p, files[p]) if p in files else _dir_entry(p, files) for p in wanted
            if p in files or any(f.startswith(f"{p}/") for f in files)]


def _commits(hub: HubServer, req: Request, repo: Repo, rev: str) -> Any:
    out, sha = [], repo.resolve(rev)
    while sha:
        c = repo.commits[sha]
        out.append({"id": sha, "title": c["title"], "message": c["message"], "authors": [{"user": hub.user}],
                    "date": c["date"]})
        sha = c["parent"]
    return _paged(hub, req, out)


def _byte_range(header: str, size: int) -> tuple[int, int]:
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if m and m[1]:
        start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
    elif m and m[2]:
        start, end = max(size - int(m[2]), 0), size - 1
    else:
        start, end = 0, -1
    if start > end:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end


def _resolve(hub: HubServer, req: Request, repo: Repo, rev: str, path: str) -> Any:
    sha = repo.resolve(rev)
    data = repo.commits[sha]["files"].get(path)
    if data is None:
        raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": sha})
    headers = {"X-Repo-Commit": sha, "ETag": f'"{git_oid(data)}"', "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream"}
    if isinstance(data, LfsBlob):  # as the Hub: a redirect to the object, its sha256 and size in X-Linked-*
        location = f"{hub.cdn_url}/lfs-objects/{data.sha256}"
        return Reply(302, b"", {**headers, "Location": location, "X-Linked-Etag": f'"{data.sha256}"',
                                "X-Linked-Size": str(len(data))})
    return _bytes_reply(req, data, headers)


def _bytes_reply(req: Request, data: bytes, headers: dict[str, str]) -> Reply:
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", **headers}
    if req.method == "HEAD" or not req.headers.get("Range"):
        return Reply(200, data, headers)
    start, end = _byte_range(req.headers["Range"], len(data))
    return Reply(206, data[start:end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"})


_T, _REPO, _REV = r"(?P<kind>datasets|models|spaces)", r"(?P<repo>[^/]+/[^/]+)", r"(?P<rev>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [(m, re.compile(rx), h) for m, rx, h in [
    ("GET", r"/api/agent-harnesses", lambda hub, req: {"standardEnvVars": [], "harnesses": {}}),
    ("GET", r"/api/whoami-v2", lambda hub, req: {"name": hub.user, "type": "user", "orgs": []}),
    ("POST", r"/api/repos/create", _create_repo),
    ("POST", r"/api/validate-yaml", _validate_yaml),
    ("GET", rf"/api/{_T}/{_REPO}(?:/revision/{_REV})?", _repo_info),
    ("POST", rf"/api/{_T}/{_REPO}/preupload/{_REV}", _preupload),
    ("POST", rf"/api/{_T}/{_REPO}/commit/{_REV}", _commit),
    ("GET", rf"/api/{_T}/{_REPO}/refs", _refs),
    ("POST", rf"/api/{_T}/{_REPO}/branch/{_REV}", _create_branch),
    ("DELETE", rf"/api/{_T}/{_REPO}/branch/{_REV}", _delete_ref("branches")),
    ("POST", rf"/api/{_T}/{_REPO}/tag/{_REV}", _create_tag),
    ("DELETE", rf"/api/{_T}/{_REPO}/tag/{_REV}", _delete_ref("tags")),
    ("GET", rf"/api/{_T}/{_REPO}/tree/{_REV}(?:/(?P<path>.+))?", _tree),
    ("POST", rf"/api/{_T}/{_REPO}/paths-info/{_REV}", _paths_info),
    ("GET", rf"/api/{_T}/{_REPO}/commits/{_REV}", _commits),
    ("GET|HEAD", rf"/(?:(?P<kind>datasets|spaces)/)?{_REPO}/resolve/{_REV}/(?P<path>.+)", _resolve),
    ("POST", rf"/(?:(?P<kind>datasets|spaces)/)?{_REPO}\.git/info/lfs/objects/batch", _lfs_batch),
    ("PUT", rf"/lfs-upload/{_T}/{_REPO}/(?P<oid>[0-9a-f]{{64}})/(?P<size>\d+)", _lfs_upload),
    ("GET|HEAD", r"/lfs-objects/(?P<oid>[0-9a-f]{64})", _lfs_object),
    ("GET", rf"/api/{_T}/{_REPO}/xet-write-token/{_REV}", _xet_write_token),
]]
# Presigned in real life: the client sends no Hub token to these
UNAUTHENTICATED = ("/api/agent-harnesses", "/lfs-upload/", "/lfs-objects/")


class HubServer:
    """The in-memory Hub. start() binds 127.0.0.1 (port 0 picks a free one) and serves from a daemon thread."""

    def __init__(self, *, token: str | None = None, port: int = 0, user: str = "hub-test-user",
                 lfs: bool = False) -> None:
        self.token, self.port, self.user, self.lfs = token, port, user, lfs
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, LfsBlob] = {}
        self.xet_token_status = 503
        self.page_size = 1000  # tree and commit listings, as the Hub pages them
        self.requests: list[tuple[str, str]] = []
        self.received: collections.Counter[str] = collections.Counter()  # request body bytes by kind
        self.delay_seconds = 0.0
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._cdn: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn_url(self) -> str:
        """Where LFS files are served from: the same server on another port, so another origin."""
        return f"http://127.0.0.1:{self._cdn.server_address[1]}" if self._cdn else self.url

    def start(self) -> HubServer:
        self._httpd = self._serve(self.port)
        self.port = self._httpd.server_address[1]
        self._cdn = self._serve(0) if self.lfs else None
        return self

    def _serve(self, port: int) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", port), _HTTPHandler)
        httpd.hub = self  # type: ignore[attr-defined]
        threading.Thread(target=httpd.serve_forever, name="hub-server", daemon=True).start()
        return httpd

    def stop(self) -> None:
        for httpd in (self._httpd, self._cdn):
            if httpd:
                httpd.shutdown()
                httpd.server_close()
        self._httpd = self._cdn = None

    def clear_received(self) -> None:
        with self._lock:
            self.received.clear()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, status: int, times: int = 1, *, method: str | None = None, path_contains: str | None = None,
               headers: dict[str, str] | None = None, after: bool = False, message: str | None = None) -> None:
        with self._lock:
            self._faults.append(Fault(status, times, method, path_contains, dict(headers or {}), after, message))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self.delay_seconds = 0.0

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def branch_head(self, repo_id: str, branch: str = "main", repo_type: str = "dataset") -> str:
        with self._lock:
            return self.repos[repo_type, repo_id].branches[branch]

    def tags(self, repo_id: str, repo_type: str = "dataset") -> dict[str, str]:
        with self._lock:
            return dict(self.repos[repo_type, repo_id].tags)

    def files_at(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        with self._lock:
            return dict(self.repos[repo_type, repo_id].files(revision))

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        path, _, query = target.partition("?")
        with self._lock:
            self.requests.append((method, path))
            self.received[_kind(method, path)] += len(body)
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault:
                fault.times -= 1
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        try:
            if fault and not fault.after:
                raise fault.error()
            if (self.token and not path.startswith(UNAUTHENTICATED)
                    and headers.get("Authorization") != f"Bearer {self.token}"):
                raise HubError(401, BAD_TOKEN)
            handler, args = self._route(method, path)
            with self._lock:
                result = self._call(handler, Request(method, parse_qs(query), headers, body, path), args)
            if fault:  # after=True: the work is done, the client hears a failure
                raise fault.error()
            return result if isinstance(result, Reply) else Reply(200, result)
        except HubError as exc:
            return exc.reply()

    def _route(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        for methods, pattern, handler in ROUTES:
            m = pattern.fullmatch(path)
            if m and method in methods.split("|"):
                return handler, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        raise HubError(404, f"No route for {method} {path}")

    def _call(self, handler: Handler, req: Request, args: dict[str, str]) -> Any:
        if "repo" in args:
            kind = args.pop("kind", "models").removesuffix("s")
            repo = self.repos.get((kind, args.pop("repo")))
            if repo is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
            return handler(self, req, repo, **args)
        return handler(self, req, **args)


def _kind(method: str, path: str) -> str:
    """What a request's body counts as in `received`: lfs (object uploads), commit, or other."""
    if path.startswith("/lfs-upload/"):
        return "lfs"
    return "commit" if method == "POST" and "/commit/" in path else "other"


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate small writes on a kept-alive connection: without TCP_NODELAY
    # every response waits ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        reply = self.server.hub.handle(self.command, self.path, self.headers, self._read_body())  # type: ignore
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers, "Content-Length": str(len(body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers, up to the blank line
            pass
        return b"".join(chunks)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve an in-memory Hugging Face Hub API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on every request")
    args = parser.parse_args()
    with HubServer(token=args.token, port=args.port) as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
