"""What an attached app finds in its environment: computed from the store at each container
start (the URLs are never copied into the app's own env vars, so a new password reaches every
app at its next start)."""

from __future__ import annotations

from ipaas.auth.keys import Cipher
from ipaas.domain.databases import Credentials, connection_url
from ipaas.domain.dbaccounts import Accounts
from ipaas.runtime.databases import host_name
from ipaas.store.databases import DatabaseStore
from ipaas.store.models import Database


def accounts_of(cipher: Cipher, db: Database) -> Accounts:
    return Accounts.from_json(cipher.decrypt(db.credentials_encrypted))


def credentials_of(cipher: Cipher, db: Database) -> Credentials:
    return accounts_of(cipher, db).app


def url_of(cipher: Cipher, db: Database) -> str:
    return connection_url(db.engine, credentials_of(cipher, db), host_name(db.id))


class DatabaseLinks:
    def __init__(self, store: DatabaseStore, cipher: Cipher) -> None:
        self.store = store
        self.cipher = cipher

    async def env_for(self, app_id: str) -> dict[str, str]:
        return {
            link.env_name: url_of(self.cipher, db)
            for link, db in await self.store.attached_to(app_id)
        }
