"""Sign in with GitHub (the OAuth web flow), linked to a local account.

The `state` sent to GitHub is signed and carries a nonce that must also come back in a cookie
of the browser that started the flow: a callback URL forged by someone else (login CSRF) or
replayed fails. A signed-in user who starts the flow links GitHub to their own account;
anyone else signs in to the account GitHub's user is linked to, or a new one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from ipaas.apps.sources import GITHUB, user_error
from ipaas.auth.keys import Cipher
from ipaas.auth.tokens import InvalidState, SignedStates
from ipaas.config import GitHubSettings
from ipaas.domain.errors import Conflict, Forbidden, InvalidInput, NotFoundError
from ipaas.providers.base import ProviderError, ProviderUser
from ipaas.providers.github import GitHubProvider
from ipaas.store.identities import IdentityStore, IdentityTaken
from ipaas.store.models import User
from ipaas.store.users import UsernameTaken, UserStore

_USERNAME_CHARS = re.compile(r"[^a-z0-9._-]")


@dataclass(frozen=True)
class Start:
    """Where to send the browser, and the nonce its cookie must carry back."""

    authorize_url: str
    nonce: str


class GitHubSignIn:
    def __init__(
        self,
        github: GitHubProvider,
        identities: IdentityStore,
        users: UserStore,
        cipher: Cipher,
        states: SignedStates,
        settings: GitHubSettings,
        redirect_uri: str,
    ) -> None:
        self.github = github
        self.identities = identities
        self.users = users
        self.cipher = cipher
        self.states = states
        self.settings = settings
        self.redirect_uri = redirect_uri

    async def start(self, link_user_id: str | None, dashboard: str | None = None) -> Start:
        """`dashboard`: the flow was started from the dashboard, which takes the browser
        back (to that page of its own) once GitHub sends it to the one callback."""
        nonce = secrets.token_urlsafe(24)
        claims = {"link": link_user_id or ""} | ({"web": dashboard} if dashboard else {})
        state = self.states.issue(nonce, **claims)
        try:
            return Start(await self.github.authorize_url(state, self.redirect_uri), nonce)
        except ProviderError as exc:
            raise NotFoundError(exc.detail, code=exc.code) from None

    def dashboard_page(self, state: str) -> str | None:
        """The dashboard page a flow started from the dashboard goes back to; None for a
        flow of the API, or a state that is not ours (its callback refuses it)."""
        try:
            return self.states.verify(state).get("web") or None
        except InvalidState:
            return None

    async def finish(self, code: str, state: str, cookie_nonce: str | None) -> User:
        """The local user the GitHub account signs in as (linked, or made now)."""
        claims = self._check_state(state, cookie_nonce)
        try:
            token = await self.github.exchange_code(code, self.redirect_uri)
            who = await self.github.identify(token)
            await self._check_orgs(token)
        except ProviderError as exc:
            raise user_error(exc) from None
        user = await self._user_for(who, claims.get("link") or None)
        try:
            await self.identities.link(
                user.id, GITHUB, who.subject, who.login, self.cipher.encrypt(token)
            )
        except IdentityTaken:
            raise Conflict(
                f"GitHub user {who.login} is linked to another account", code="identity_taken"
            ) from None
        return user

    def _check_state(self, state: str, cookie_nonce: str | None) -> dict[str, str]:
        try:
            return self.states.redeem(state, "signin", cookie_nonce)
        except InvalidState as exc:
            raise InvalidInput(f"sign-in refused: {exc.why}", code="bad_state") from None

    async def _check_orgs(self, token: str) -> None:
        allowed = {o.lower() for o in self.settings.allowed_orgs}
        if not allowed:
            return
        mine = {o.lower() for o in await self.github.organisations(token)}
        if not allowed & mine:
            raise Forbidden(
                "sign-in is limited to members of: " + ", ".join(sorted(allowed)),
                code="org_not_allowed",
            )

    async def _user_for(self, who: ProviderUser, link_user_id: str | None) -> User:
        if link_user_id:
            user = await self.users.get(link_user_id)
        else:
            user = await self.identities.owner(GITHUB, who.subject)
            if user is None:
                user = await self._new_user(who)
        if user is None or user.disabled:
            raise Forbidden("the account is disabled", code="account_disabled")
        return user

    async def _new_user(self, who: ProviderUser) -> User:
        if not self.settings.create_accounts:
            raise Forbidden(
                "no account is linked to this GitHub user; sign in and link it first",
                code="no_account",
            )
        base = _USERNAME_CHARS.sub("-", who.login.lower())[:50] or "github"
        for attempt in range(20):
            name = base if attempt == 0 else f"{base}-gh{attempt}"
            try:
                # No password: this account signs in through GitHub only (until one is set).
                return await self.users.create(name, None, "user", email=who.email)
            except UsernameTaken:
                continue
        raise Conflict("no free user name for this GitHub user", code="username_taken")
