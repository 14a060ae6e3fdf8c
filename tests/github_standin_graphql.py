"""The stand-in GitHub's GraphQL endpoint (`POST /api/graphql`, as on GitHub Enterprise Server;
`https://api.github.com/graphql` on github.com).

A real GraphQL executor (graphql-core) over the part of GitHub's public schema the platform
asks for: `repository(owner, name)` with `defaultBranchRef` and `refs(refPrefix, first, after,
orderBy)` (cursor pagination; `TAG_COMMIT_DATE` orders by the commit a ref points to, newest
first with `DESC`), and `rateLimit`. As GitHub does, a connection needs `first` or `last` (at
most 100), a repository the token cannot see is `null` with a `NOT_FOUND` error, and errors
carry a `type`.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, build_schema, graphql_sync

if TYPE_CHECKING:
    from tests.github_standin import StandInGitHub, StandInRepo

SCHEMA = build_schema(
    """
    scalar DateTime
    scalar GitObjectID

    enum OrderDirection { ASC DESC }
    enum RefOrderField { ALPHABETICAL TAG_COMMIT_DATE }
    input RefOrder { field: RefOrderField!, direction: OrderDirection! }

    interface GitObject { oid: GitObjectID!, abbreviatedOid: String! }
    type Commit implements GitObject {
      oid: GitObjectID!
      abbreviatedOid: String!
      committedDate: DateTime!
      messageHeadline: String!
    }

    type Ref { id: ID!, name: String!, prefix: String!, target: GitObject }
    type PageInfo {
      hasNextPage: Boolean!
      hasPreviousPage: Boolean!
      startCursor: String
      endCursor: String
    }
    type RefEdge { cursor: String!, node: Ref }
    type RefConnection { edges: [RefEdge], nodes: [Ref], pageInfo: PageInfo!, totalCount: Int! }

    type Repository {
      id: ID!
      name: String!
      nameWithOwner: String!
      isPrivate: Boolean!
      defaultBranchRef: Ref
      refs(
        refPrefix: String!, first: Int, after: String, last: Int, before: String,
        orderBy: RefOrder, query: String
      ): RefConnection
    }

    type RateLimit {
      limit: Int!, cost: Int!, remaining: Int!, used: Int!, resetAt: DateTime!, nodeCount: Int!
    }

    type Query {
      repository(owner: String!, name: String!, followRenames: Boolean = true): Repository
      rateLimit(dryRun: Boolean = false): RateLimit
    }
    """
)
MAX_PAGE = 100


class TypedError(Exception):
    """An error as GitHub words it: with its `type` (NOT_FOUND, MISSING_PAGINATION_BOUNDARIES…)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class GitRef:
    name: str
    oid: str
    committed_at: datetime
    headline: str


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:{offset}".encode()).decode()


def _offset(cursor: str) -> int:
    try:
        kind, _, number = base64.b64decode(cursor, validate=True).decode().partition(":")
        if kind == "cursor" and number.isdigit():
            return int(number)
    except ValueError:
        pass
    raise TypedError(
        "INVALID_CURSOR_ARGUMENTS", f"`{cursor}` does not appear to be a valid cursor."
    )


def refs_of(hub: StandInGitHub, repo: StandInRepo, prefix: str) -> list[GitRef]:
    """The repository's refs under a prefix, read from its git repository."""
    if repo.path is None:  # a listing-only repository: its default branch, pushed_at
        if prefix != "refs/heads/":
            return []
        return [GitRef(repo.default_branch, "0" * 40, repo.pushed_at, "initial")]
    fmt = "%(refname)%00%(objectname)%00%(committerdate:unix)%00%(contents:subject)"
    out = subprocess.run(
        ["git", "for-each-ref", f"--format={fmt}", prefix],
        cwd=repo.path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = []
    for line in out.splitlines():
        ref, oid, when, subject = line.split("\0")
        at = datetime.fromtimestamp(int(when), UTC)
        found.append(GitRef(ref.removeprefix(prefix), oid, at, subject))
    return found


def _ref_json(ref: GitRef, prefix: str) -> dict[str, Any]:
    return {
        "id": base64.b64encode(f"Ref:{prefix}{ref.name}".encode()).decode(),
        "name": ref.name,
        "prefix": prefix,
        "target": {
            "__typename": "Commit",
            "oid": ref.oid,
            "abbreviatedOid": ref.oid[:7],
            "committedDate": _iso(ref.committed_at),
            "messageHeadline": ref.headline,
        },
    }


def _connection(
    every: list[GitRef], prefix: str, first: int | None, after: str | None, last: int | None
) -> dict[str, Any]:
    if first is None and last is None:
        raise TypedError(
            "MISSING_PAGINATION_BOUNDARIES",
            "You must provide a `first` or `last` value to properly paginate the `refs` connection.",
        )
    if last is not None:
        raise TypedError("NOT_SUPPORTED", "the stand-in pages refs forward only (`first`)")
    assert first is not None
    if first < 1 or first > MAX_PAGE:
        raise TypedError(
            "EXCESSIVE_PAGINATION",
            f"Requesting {first} records on the `refs` connection exceeds the `first` limit "
            f"of {MAX_PAGE} records.",
        )
    start = _offset(after) + 1 if after else 0
    chunk = every[start : start + first]
    edges = [
        {"cursor": _cursor(start + i), "node": _ref_json(ref, prefix)}
        for i, ref in enumerate(chunk)
    ]
    return {
        "totalCount": len(every),
        "edges": edges,
        "nodes": [e["node"] for e in edges],
        "pageInfo": {
            "hasNextPage": start + len(chunk) < len(every),
            "hasPreviousPage": start > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _repository(hub: StandInGitHub, login: str, owner: str, name: str) -> dict[str, Any]:
    repo = hub.repos.get(f"{owner}/{name}")
    if repo is None or not hub.can_read(login, repo):
        raise TypedError(
            "NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'."
        )

    def default_branch_ref(_info: Any) -> dict[str, Any] | None:
        heads = {r.name: r for r in refs_of(hub, repo, "refs/heads/")}
        found = heads.get(repo.default_branch)
        return _ref_json(found, "refs/heads/") if found else None

    def refs(
        _info: Any,
        refPrefix: str,  # noqa: N803 - GitHub's argument names
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        orderBy: dict[str, str] | None = None,  # noqa: N803
        query: str | None = None,
    ) -> dict[str, Any]:
        every = refs_of(hub, repo, refPrefix)
        if query:
            every = [r for r in every if query.lower() in r.name.lower()]
        order = orderBy or {"field": "ALPHABETICAL", "direction": "ASC"}
        every.sort(key=lambda r: r.name)
        if order["field"] == "TAG_COMMIT_DATE":
            every.sort(key=lambda r: r.committed_at)
        if order["direction"] == "DESC":
            every.reverse()
        return _connection(every, refPrefix, first, after, last)

    return {
        "id": base64.b64encode(f"Repository:{repo.id}".encode()).decode(),
        "name": repo.name,
        "nameWithOwner": repo.full_name,
        "isPrivate": repo.private,
        "defaultBranchRef": default_branch_ref,
        "refs": refs,
    }


def execute(
    hub: StandInGitHub, login: str, body: dict[str, Any], limit: dict[str, int]
) -> dict[str, Any]:
    """Run one GraphQL request for a user; `limit` is its graphql rate limit (after this
    query's cost). The answer as GitHub shapes it: `data`, and `errors` with their `type`."""
    query = body.get("query")
    if not isinstance(query, str):
        return {
            "errors": [{"message": "A query attribute must be specified and must be a string."}]
        }
    root = {
        "repository": lambda info, owner, name, followRenames=True: _repository(
            hub, login, owner, name
        ),
        "rateLimit": lambda info, dryRun=False: {**limit, "cost": 1, "nodeCount": 0},
    }
    result = graphql_sync(SCHEMA, query, root_value=root, variable_values=body.get("variables"))
    answer: dict[str, Any] = {}
    if result.data is not None:
        answer["data"] = result.data
    if result.errors:
        answer["errors"] = [_error(e) for e in result.errors]
    return answer


def _error(error: GraphQLError) -> dict[str, Any]:
    shaped = dict(error.formatted)
    original = error.original_error
    if isinstance(original, TypedError):
        shaped = {"type": original.kind, **shaped}
    return shaped
