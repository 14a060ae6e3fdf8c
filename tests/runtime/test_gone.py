"""Reading the logs of a container the warden is removing (log retention) is not an error:
the engine's 409 "marked for removal" means the logs are gone, as a 404 does."""

from __future__ import annotations

import docker.errors
import requests

from ipaas.runtime.docker import _gone


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    if status == 404:
        return docker.errors.NotFound("gone", response=response, explanation=explanation)
    return docker.errors.APIError("engine said no", response=response, explanation=explanation)


def test_a_container_marked_for_removal_has_no_logs_left() -> None:
    marked = "can not get logs from container which is dead or marked for removal"
    assert _gone(api_error(409, marked))
    assert _gone(api_error(404, "No such container: abc"))


def test_other_engine_errors_are_not_taken_for_a_gone_container() -> None:
    assert not _gone(api_error(409, "container is restarting, wait until it is running"))
    assert not _gone(api_error(500, "marked for removal"))
