"""Which user Dockerfiles are refused for ADD of a URL (pure: no engine)."""

from __future__ import annotations

import pytest

from ipaas.builds.base import BuildFailed
from ipaas.builds.dockerfile_policy import check_user_dockerfile, logical_lines

REFUSED = [
    "FROM x\nADD http://10.0.0.1/x /x\n",
    "FROM x\nadd https://example.invalid/x /x\n",
    "FROM x\nADD --chown=1:1 http://h/x /x\n",
    'FROM x\nADD --chown=1:1 ["http://h/x", "/x"]\n',
    'FROM x\nADD ["http://h/x", "/x"]\n',
    "FROM x\nADD local.txt \\\n    http://h/x /dst/\n",
    "FROM x\nADD \\\n# a comment inside the continuation\n  http://h/x /x\n",
    "# escape=`\nFROM x\nADD local.txt `\n  http://h/x C:/dst/\n",
    "FROM x\nONBUILD ADD http://h/x /x\n",
    "FROM x\nARG SRC=http://h/x\nADD $SRC /x\n",
    "FROM x\nADD ${SRC} /x\n",
    "FROM x\nADD ftp://h/x /x\n",
]

ALLOWED = [
    "FROM x\nADD app.tar.gz /srv/\n",
    "FROM x\nCOPY . /app\nRUN curl -fsS https://example.invalid/x -o /x\n",
    'FROM x\nADD --chown=1:1 ["a b.txt", "/dst/"]\n',
    "FROM x\n# ADD http://h/x /x  (a comment)\nADD a /a\n",
    "FROM x\nENV URL=http://h/x\nLABEL source=http://h/x\n",
]


@pytest.mark.parametrize("text", REFUSED)
def test_add_of_a_url_is_a_user_fault(text: str) -> None:
    with pytest.raises(BuildFailed) as failed:
        check_user_dockerfile(text)
    assert failed.value.code == "add_url_not_allowed"
    assert failed.value.user_fault


@pytest.mark.parametrize("text", ALLOWED)
def test_other_dockerfiles_pass(text: str) -> None:
    check_user_dockerfile(text)


def test_logical_lines_join_continuations() -> None:
    assert logical_lines("FROM x\nRUN a \\\n  && b\n\n# c\nCMD d\n") == [
        "FROM x",
        "RUN a  && b",
        "CMD d",
    ]
