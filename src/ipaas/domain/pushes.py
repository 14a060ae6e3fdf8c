"""Push webhooks from GitHub, Gitea/Forgejo and GitLab: who sent them, whether they are
genuine, and what a delivery means for one app. Pure: the API reads, this decides."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_DELIVERY_ID = 100


@dataclass(frozen=True)
class Delivery:
    """What the headers of a webhook request say: the sender, the event and the delivery id."""

    forge: str  # github | gitea | gitlab
    event: str  # push, pull_request, ping (GitLab's "Push Hook" is push)
    delivery_id: str


def read_headers(headers: Mapping[str, str]) -> Delivery | None:
    """The delivery the headers describe (lower-case names), or None for no known forge."""
    if "x-gitea-event" in headers or "x-forgejo-event" in headers:
        event = headers.get("x-gitea-event") or headers.get("x-forgejo-event", "")
        delivery = headers.get("x-gitea-delivery") or headers.get("x-forgejo-delivery", "")
        return Delivery("gitea", event, delivery[:MAX_DELIVERY_ID])
    if "x-github-event" in headers:
        delivery = headers.get("x-github-delivery", "")[:MAX_DELIVERY_ID]
        return Delivery("github", headers["x-github-event"], delivery)
    if "x-gitlab-event" in headers:
        kind = {"Push Hook": "push", "Merge Request Hook": "merge_request"}
        event = kind.get(headers["x-gitlab-event"], headers["x-gitlab-event"])
        delivery = headers.get("x-gitlab-event-uuid") or headers.get("x-gitlab-webhook-uuid", "")
        return Delivery("gitlab", event, delivery[:MAX_DELIVERY_ID])
    return None


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value of a body: sha256=<hex HMAC>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def genuine(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """The request carries the app's secret: an HMAC of the body (GitHub, Gitea) or, as GitLab
    sends it, the secret itself. Compared in constant time."""
    if "x-gitlab-token" in headers:
        return hmac.compare_digest(headers["x-gitlab-token"].encode(), secret.encode())
    given = headers.get("x-hub-signature-256", "")
    if not given and "x-gitea-signature" in headers:
        given = "sha256=" + headers["x-gitea-signature"]
    return hmac.compare_digest(given.encode(), sign(secret, body).encode())


def signed_by_github(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """GitHub's `X-Hub-Signature-256` only (a GitHub App's webhook), in constant time."""
    given = headers.get("x-hub-signature-256", "")
    return hmac.compare_digest(given.encode(), sign(secret, body).encode())


@dataclass(frozen=True)
class Outcome:
    """What a delivery does to the app: `rebuild` (at `commit`), or `ignored` with a reason."""

    action: str  # rebuild | ignored | pong | preview_deploy | preview_delete
    reason: str
    commit: str | None = None
    number: int | None = None  # a pull request's number (previews)
    branch: str | None = None  # the branch a preview builds


def ignored(reason: str) -> Outcome:
    return Outcome("ignored", reason)


def _default_branch(payload: Mapping[str, Any]) -> str | None:
    repository = payload.get("repository") or payload.get("project") or {}
    value = repository.get("default_branch") if isinstance(repository, Mapping) else None
    return value if isinstance(value, str) else None


def _changed_paths(payload: Mapping[str, Any]) -> list[str] | None:
    """Every path the pushed commits touched; None when the payload does not list them."""
    commits = payload.get("commits")
    if not isinstance(commits, list):
        return None
    paths: list[str] = []
    for commit in commits:
        for key in ("added", "removed", "modified"):
            paths += [p for p in (commit.get(key) or []) if isinstance(p, str)]
    return paths


def touches(paths: list[str] | None, root_directory: str) -> bool:
    """Whether a push changed anything under the app's root directory (all of it: no root)."""
    root = root_directory.strip("/")
    if not root or paths is None:
        return True
    return any(p == root or p.startswith(root + "/") for p in paths)


def decide_push(
    payload: Mapping[str, Any], tracked_branch: str | None, root_directory: str
) -> Outcome:
    """A push to the app's branch rebuilds exactly the pushed commit; anything else is
    ignored with the reason (a tag, another branch, a deleted branch, other folders)."""
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref.startswith("refs/heads/"):
        return ignored(f"not a branch: {ref}")
    branch = ref.removeprefix("refs/heads/")
    wanted = tracked_branch or _default_branch(payload)
    if branch != wanted:
        return ignored(f"push to {branch}, the app follows {wanted}")
    after = payload.get("after") or payload.get("checkout_sha")
    if payload.get("deleted") or not isinstance(after, str) or set(after) == {"0"}:
        return ignored(f"branch {branch} was deleted")
    if not touches(_changed_paths(payload), root_directory):
        return ignored(f"no change under {root_directory}")
    return Outcome("rebuild", f"push to {branch}", commit=after.lower())


# Pull-request actions that (re)deploy a preview, and those that remove it.
_PREVIEW_UPDATES = frozenset({"opened", "reopened", "synchronize"})
_PREVIEW_ENDS = frozenset({"closed"})


def decide_pull_request(
    payload: Mapping[str, Any],
    tracked_branch: str | None,
    *,
    previews: bool,
    forks_allowed: bool,
) -> Outcome:
    """A pull request against the app's branch deploys a preview of its head (opened,
    updated) or removes it (closed or merged); forks only when the owner allows them."""
    if not previews:
        return ignored("previews are off for this app")
    pr = payload.get("pull_request")
    action = payload.get("action")
    if not isinstance(pr, Mapping) or not isinstance(payload.get("number"), int):
        return ignored("not a pull request payload")
    number = int(payload["number"])
    base = (pr.get("base") or {}).get("ref")
    wanted = tracked_branch or _default_branch(payload)
    if base != wanted:
        return ignored(f"pull request against {base}, the app follows {wanted}")
    if action in _PREVIEW_ENDS:
        return Outcome("preview_delete", f"pull request #{number} closed", number=number)
    if action not in _PREVIEW_UPDATES:
        return ignored(f"pull request action {action}")
    head = pr.get("head") or {}
    head_repo = (head.get("repo") or {}).get("full_name")
    base_repo = ((pr.get("base") or {}).get("repo") or {}).get("full_name")
    if head_repo != base_repo and not forks_allowed:
        return ignored(f"pull request #{number} comes from a fork ({head_repo})")
    sha, ref = head.get("sha"), head.get("ref")
    if not isinstance(sha, str) or not isinstance(ref, str):
        return ignored("the pull request has no head")
    return Outcome(
        "preview_deploy", f"pull request #{number} {action}", commit=sha.lower(), number=number,
        branch=ref,
    )  # fmt: skip
