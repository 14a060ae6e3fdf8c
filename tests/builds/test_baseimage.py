"""Which images a user Dockerfile may name (pure; the engine tests are in test_sandbox.py)."""

from __future__ import annotations

import time

import pytest

from ipaas.builds.base import BuildFailed
from ipaas.builds.baseimage import ImagePolicy, check_dockerfile
from ipaas.domain.labels import image_repository

OWN = image_repository("shop", "a1")
OTHER = image_repository("blog", "b2") + ":r1"
POLICY = ImagePolicy(
    base_images=("python:3.11-slim", "busybox:stable"),
    patterns=("debian:*",),
    own_repository=OWN,
)


def refused(text: str, build_args: dict[str, str] | None = None) -> str:
    with pytest.raises(BuildFailed) as info:
        check_dockerfile(text, POLICY, build_args or {})
    assert info.value.user_fault and info.value.code == "base_image_not_allowed"
    return info.value.reason


@pytest.mark.parametrize(
    "text",
    [
        f"FROM {OTHER}\n",
        f"FROM docker.io/{OTHER}\n",
        f"FROM --platform=linux/amd64 {OTHER} AS base\n",
        f"ARG BASE={OTHER}\nFROM $BASE\n",
        f"ARG BASE={OTHER}\nFROM ${{BASE}}\n",
        f"ARG TAG\nFROM ${{TAG:-{OTHER}}}\n",
        f"FROM busybox:stable\nCOPY --from={OTHER} /app /stolen\n",
        f"FROM busybox:stable\nCOPY --chown=1:1 --from={OTHER} /app /stolen\n",
        f"FROM busybox:stable\nRUN --mount=type=bind,from={OTHER},target=/x cat /x/app.py\n",
        f"FROM busybox:stable\nONBUILD COPY --from={OTHER} /app /stolen\n",
        f"from \\\n  {OTHER}\n",
        f"# escape=`\nFROM busybox:stable\nCOPY `\n  --from={OTHER} /app /stolen\n",
        "FROM ipaas/blog:r1\n",  # the old, name-only scheme
        "FROM 0123abcd\n",  # an image id prefix
        "FROM sha256:" + "0" * 64 + "\n",
        "FROM busybox:stable\nCOPY --from=$X /a /b\n",
        "FROM ${X/a/b}\n",
        'FROM "busybox:stable"\n',
        "FROM perl:5\n",  # not on the allow-list
    ],
)
def test_other_images_are_refused(text: str) -> None:
    refused(text)


def test_the_refusal_names_the_image() -> None:
    assert OTHER in refused(f"FROM busybox:stable AS a\nFROM {OTHER}\n")


def test_a_build_argument_cannot_smuggle_an_image_in() -> None:
    refused("ARG BASE=busybox:stable\nFROM $BASE\n", {"BASE": OTHER})


@pytest.mark.parametrize(
    "text",
    [
        "FROM python:3.11-slim\n",
        "FROM docker.io/library/python:3.11-slim\n",
        "FROM debian:bookworm-slim\n",
        "FROM scratch\nCOPY a /a\n",
        f"FROM {OWN}:r3\n",  # the same app's earlier release
        "ARG V=3.11-slim\nFROM python:${V}\n",
        "FROM busybox:stable AS build\nRUN true\nFROM build\nCOPY --from=build /a /a\n",
        "FROM busybox:stable AS Build\nFROM debian:bookworm\nCOPY --from=0 /a /a\n",
        "FROM busybox:stable\nRUN --mount=type=cache,target=/root/.cache true\n",
    ],
)
def test_allowed_images(text: str) -> None:
    check_dockerfile(text, POLICY, {})


def test_a_stage_index_is_not_an_image_in_from() -> None:
    refused("FROM busybox:stable\nFROM 0\n")


def test_parsing_is_linear() -> None:
    text = "FROM busybox:stable\n" + ("RUN " + "\\\n" * 20_000 + "x\n") + "#" * 500_000 + "\n"
    started = time.monotonic()
    check_dockerfile(text, POLICY, {})
    assert time.monotonic() - started < 1
