"""`.dockerignore` rules, matched without regular expressions.

Patterns and file names both come from the repository. Translating globs to Python regexes
(as docker-py does) gives nested `[^/]*` groups that backtrack polynomially on long names, so
this matcher walks segments with a small state set and matches each segment with the linear
greedy wildcard algorithm. Semantics follow Docker's: `*` and `?` stay within a segment, `**`
spans any number of segments, `!` re-includes, the last matching rule wins, and a rule that
matches a folder matches everything under it.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ipaas.builds.base import BuildFailed

MAX_RULES = 1000
MAX_RULE_CHARS = 1024

# A segment pattern compiled to tokens: a str is a literal character, "*" and "?" are
# wildcards (as 1-tuples so they cannot be confused with the literal characters), and a
# character class is (negated, ((lo, hi), ...)).
_STAR = ("*",)
_ANY = ("?",)
Token = str | tuple[str] | tuple[bool, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class _Rule:
    segments: tuple[tuple[Token, ...] | str, ...]  # "**" stays a str
    exclude: bool


class IgnoreRules:
    """The rules of one .dockerignore text."""

    def __init__(self, text: str) -> None:
        self.rules = _parse(text)
        # Without `!` rules an excluded folder can be skipped as a whole.
        self.has_exceptions = any(not rule.exclude for rule in self.rules)

    def excluded(self, rel: str) -> bool:
        """Whether the relative POSIX path is left out of the build context."""
        parts = rel.split("/")
        verdict = False
        for rule in self.rules:
            if _matches_prefix(rule.segments, parts):
                verdict = rule.exclude
        return verdict


def _parse(text: str) -> list[_Rule]:
    rules: list[_Rule] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_RULE_CHARS or len(rules) >= MAX_RULES:
            raise BuildFailed(
                f".dockerignore may hold at most {MAX_RULES} rules of at most"
                f" {MAX_RULE_CHARS} characters",
                user_fault=True,
                code="bad_manifest",
            )
        exclude = not line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
        if pattern in ("", "."):
            continue
        segments = tuple(s if s == "**" else _compile(s) for s in pattern.split("/"))
        rules.append(_Rule(segments, exclude))
    return rules


def _matches_prefix(pattern: tuple[tuple[Token, ...] | str, ...], parts: list[str]) -> bool:
    """Whether the pattern matches the path or one of its parent folders."""
    states = _closure({0}, pattern)
    for part in parts:
        following: set[int] = set()
        for index in states:
            if index == len(pattern):
                continue
            segment = pattern[index]
            if segment == "**":
                following.add(index)
            elif _segment_matches(segment, part):  # type: ignore[arg-type]
                following.add(index + 1)
        states = _closure(following, pattern)
        if len(pattern) in states:
            return True
        if not states:
            return False
    return False


def _closure(states: set[int], pattern: tuple[object, ...]) -> set[int]:
    """`**` may also match no segment at all."""
    result = set(states)
    for index in sorted(states):
        while index < len(pattern) and pattern[index] == "**":
            index += 1
            result.add(index)
    return result


def _compile(segment: str) -> tuple[Token, ...]:
    tokens: list[Token] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "\\" and index + 1 < len(segment):
            tokens.append(segment[index + 1])
            index += 2
            continue
        if char == "*":
            if not tokens or tokens[-1] is not _STAR:  # "**" inside a segment is one "*"
                tokens.append(_STAR)
        elif char == "?":
            tokens.append(_ANY)
        elif char == "[" and (end := segment.find("]", index + 2)) != -1:
            tokens.append(_char_class(segment[index + 1 : end]))
            index = end
        else:
            tokens.append(char)
        index += 1
    return tuple(tokens)


def _char_class(body: str) -> tuple[bool, tuple[tuple[str, str], ...]]:
    negated = body[:1] in ("^", "!")
    body = body[1:] if negated else body
    ranges: list[tuple[str, str]] = []
    index = 0
    while index < len(body):
        if index + 2 < len(body) and body[index + 1] == "-":
            ranges.append((body[index], body[index + 2]))
            index += 3
        else:
            ranges.append((body[index], body[index]))
            index += 1
    return negated, tuple(ranges)


def _one(token: Token, char: str) -> bool:
    if isinstance(token, str):
        return token == char
    if token is _ANY:
        return True
    negated, ranges = token  # type: ignore[misc]
    inside = any(lo <= char <= hi for lo, hi in ranges)
    return inside != negated


def _segment_matches(tokens: tuple[Token, ...], name: str) -> bool:
    """Greedy wildcard matching: remember only the last `*`, so the work is at most
    len(tokens) * len(name) steps instead of exponential."""
    t = n = 0
    star_t, star_n = -1, 0
    while n < len(name):
        if t < len(tokens) and tokens[t] is _STAR:
            star_t, star_n = t, n
            t += 1
        elif t < len(tokens) and _one(tokens[t], name[n]):
            t += 1
            n += 1
        elif star_t != -1:
            star_n += 1
            t, n = star_t + 1, star_n
        else:
            return False
    while t < len(tokens) and tokens[t] is _STAR:
        t += 1
    return t == len(tokens)
