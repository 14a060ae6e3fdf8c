"""The platform's GitHub App, made with GitHub's manifest flow instead of by hand.

An admin starts the flow: the platform answers a form that posts the App's manifest (its
name, URLs, permissions and webhook) to GitHub, with a signed `state` whose nonce is also in a
cookie of that admin's browser. GitHub shows the admin the App, makes it, and sends the browser
back with a code; the platform exchanges the code (once, within the hour) for the App's id,
slug, client id and secret, webhook secret and private key, keeps the secrets encrypted with
the platform key, and from then on works in App mode: every process reads the App from the
store (see `stored_registration`), nobody edits settings.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import structlog

from ipaas.apps.sources import user_error
from ipaas.auth.keys import Cipher
from ipaas.auth.tokens import InvalidState, SignedStates
from ipaas.config import Settings
from ipaas.domain.errors import Conflict, Forbidden, InvalidInput, Unavailable
from ipaas.domain.github import (
    app_manifest,
    app_name_problem,
    default_app_name,
    login_problem,
    manifest_post_url,
)
from ipaas.providers.base import ProviderError
from ipaas.providers.github import (
    ConvertedApp,
    GitHubProvider,
    GitHubRegistration,
    RegistrationLoader,
)
from ipaas.store.github_apps import GitHubAppStore
from ipaas.store.models import GitHubAppRecord
from ipaas.store.users import UserStore

log = structlog.get_logger()
PURPOSE = "app-manifest"


@dataclass(frozen=True)
class ManifestStart:
    """Where the admin's browser posts `manifest` (the URL carries the state), and the nonce
    its cookie must bring back."""

    post_url: str
    manifest: dict[str, Any]
    nonce: str


@dataclass(frozen=True)
class Made:
    """The App made, and the platform page the flow was started from (None: the API)."""

    record: GitHubAppRecord
    then: str | None


class GitHubAppSetup:
    def __init__(
        self,
        github: GitHubProvider,
        store: GitHubAppStore,
        users: UserStore,
        cipher: Cipher,
        states: SignedStates,
        settings: Settings,
    ) -> None:
        self.github = github
        self.store = store
        self.users = users
        self.cipher = cipher
        self.states = states
        self.settings = settings
        self.host = settings.github.web_url.rstrip("/")

    async def current(self) -> GitHubAppRecord | None:
        return await self.store.get(self.host)

    async def start(
        self,
        admin_id: str,
        *,
        redirect_url: str,
        org: str | None = None,
        name: str | None = None,
        replace: bool = False,
        then: str | None = None,
    ) -> ManifestStart:
        """The manifest and where to post it; `then`: a page of the platform (a path) to send
        the browser to once the App is made."""
        if self.github.configured_in_settings:
            raise Conflict(
                "GitHub is configured in the settings (github.client_id); the App there is used",
                code="github_configured",
            )
        if not replace and await self.store.get(self.host) is not None:
            raise Conflict(
                "a GitHub App was made already; start again with replace=true to make another",
                code="github_app_exists",
            )
        if org is not None and (problem := login_problem(org)):
            raise InvalidInput(f"org: {problem}", code="invalid_org")
        api = self.settings.api_url.rstrip("/")
        name = name if name is not None else default_app_name(api)
        if problem := app_name_problem(name):
            raise InvalidInput(problem, code="invalid_name")
        manifest = app_manifest(
            name=name,
            public_url=api,
            redirect_url=redirect_url,
            signin_callback=f"{api}/api/v1/auth/github/callback",
            hook_url=f"{api}/api/v1/hooks/github",
        )
        nonce = secrets.token_urlsafe(24)
        back = {"then": then} if then and then.startswith("/") and "//" not in then else {}
        state = self.states.issue(nonce, PURPOSE, by=admin_id, **back)
        post_url = f"{manifest_post_url(self.host, org)}?{urlencode({'state': state})}"
        return ManifestStart(post_url, manifest, nonce)

    async def finish(self, code: str, state: str, cookie_nonce: str | None) -> Made:
        """Exchange GitHub's code for the App and keep it. A state that is forged, of another
        flow, expired, from another browser or used before is refused (`bad_state`)."""
        claims = await self._check_state(state, cookie_nonce)
        admin = await self.users.get(claims.get("by", ""))
        if admin is None or admin.disabled or admin.role != "admin":
            raise Forbidden("only an admin may make the platform's GitHub App", code="forbidden")
        try:
            converted = await self.github.convert_manifest(code)
        except ProviderError as exc:
            raise user_error(exc) from None
        _check_key(converted)
        record = GitHubAppRecord(
            host=self.host,
            app_id=converted.app_id,
            slug=converted.slug,
            name=converted.name,
            owner=converted.owner,
            html_url=converted.html_url,
            client_id=converted.client_id,
            client_secret_encrypted=self.cipher.encrypt(converted.client_secret),
            webhook_secret_encrypted=(
                self.cipher.encrypt(converted.webhook_secret) if converted.webhook_secret else None
            ),
            private_key_encrypted=self.cipher.encrypt(converted.pem),
            state_nonce=claims["n"],
            created_by=admin.id,
        )
        await self.store.save(record)
        self.github.forget_registration()
        log.info("github app made", app_id=record.app_id, slug=record.slug, owner=record.owner)
        return Made(record, claims.get("then"))

    async def remove(self) -> bool:
        """Forget the App made here (it stays on GitHub until an admin deletes it there)."""
        removed = await self.store.remove(self.host)
        self.github.forget_registration()
        return removed

    async def _check_state(self, state: str, cookie_nonce: str | None) -> dict[str, str]:
        try:
            claims = self.states.redeem(state, PURPOSE, cookie_nonce)
        except InvalidState as exc:
            raise InvalidInput(exc.why, code="bad_state") from None
        if await self.store.made_by_flow(claims["n"]):  # by another process, maybe
            raise InvalidInput("this flow was completed already", code="bad_state")
        return claims


def _check_key(converted: ConvertedApp) -> None:
    """The private key GitHub sent must be one (the App is useless without it)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        load_pem_private_key(converted.pem.encode(), password=None)
    except (ValueError, TypeError):
        raise Unavailable(
            "GitHub's answer holds no usable private key", code="provider_unavailable"
        ) from None


def stored_registration(store: GitHubAppStore, cipher: Cipher, host: str) -> RegistrationLoader:
    """How a process reads the App made here: decrypted only when it is used."""

    async def load() -> GitHubRegistration | None:
        row = await store.get(host.rstrip("/"))
        if row is None:
            return None
        pem = row.private_key_encrypted
        hook = row.webhook_secret_encrypted
        return GitHubRegistration(
            "app", row.client_id, cipher.decrypt(row.client_secret_encrypted), row.app_id,
            lambda: cipher.decrypt(pem).encode(), row.slug,
            cipher.decrypt(hook) if hook else None,
        )  # fmt: skip

    return load
