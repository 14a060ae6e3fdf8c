"""/databases: database add-ons of SPEC §4 (PostgreSQL, MariaDB, Redis), their credentials,
attachments to the owner's apps, and verified backups. Another user's ids answer 404."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ipaas.api.deps import current_user
from ipaas.api.schemas import DNS_LABEL, Strict
from ipaas.apps.service import Principal
from ipaas.databases.backups import BackupService
from ipaas.databases.service import DatabaseRequest, DatabaseService
from ipaas.domain.databases import BackupStatus
from ipaas.domain.errors import Conflict
from ipaas.runtime.databases import host_name
from ipaas.store.models import Database, DatabaseBackup

router = APIRouter(prefix="/databases", tags=["databases"])


def database_service(request: Request) -> DatabaseService:
    return cast(DatabaseService, request.app.state.database_service)


def backup_service(request: Request) -> BackupService:
    return cast(BackupService, request.app.state.backup_service)


async def owned_database(
    db_id: str,
    who: Principal = Depends(current_user),
    svc: DatabaseService = Depends(database_service),
) -> Database:
    return await svc.get(who, db_id)


class DatabaseCreate(Strict):
    name: str = Field(pattern=DNS_LABEL, min_length=2, max_length=63)
    engine: str = Field(max_length=16)
    version: str | None = Field(default=None, max_length=16)
    memory_mb: int | None = Field(default=None, ge=1, le=1_048_576)
    cpus: float | None = Field(default=None, gt=0, le=256)


class DatabaseOut(BaseModel):
    id: str
    name: str
    engine: str
    version: str
    memory_mb: int
    cpus: float
    state: str
    state_reason: str | None
    host: str
    created_at: datetime
    updated_at: datetime


class CredentialsOut(BaseModel):
    username: str
    password: str
    database: str
    host: str
    port: int
    url: str


class AttachRequest(Strict):
    app_id: str = Field(max_length=64)
    env_name: str | None = Field(default=None, max_length=64)


class AttachmentOut(BaseModel):
    app_id: str
    app_name: str
    env_name: str
    created_at: datetime


class BackupOut(BaseModel):
    id: str
    status: str
    reason: str
    size_bytes: int | None
    verified: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def database_out(db: Database) -> DatabaseOut:
    return DatabaseOut(
        id=db.id, name=db.name, engine=db.engine, version=db.version, memory_mb=db.memory_mb,
        cpus=db.cpus, state=db.state, state_reason=db.state_reason, host=host_name(db.id),
        created_at=db.created_at, updated_at=db.updated_at,
    )  # fmt: skip


def backup_out(b: DatabaseBackup) -> BackupOut:
    return BackupOut(
        id=b.id, status=b.status, reason=b.reason, size_bytes=b.size_bytes, verified=b.verified,
        error=b.error, created_at=b.created_at, finished_at=b.finished_at,
    )  # fmt: skip


@router.post("", status_code=201, response_model=DatabaseOut)
async def create_database(
    body: DatabaseCreate,
    who: Principal = Depends(current_user),
    svc: DatabaseService = Depends(database_service),
) -> DatabaseOut:
    request = DatabaseRequest(body.name, body.engine, body.version, body.memory_mb, body.cpus)
    return database_out(await svc.create(who, request))


@router.get("", response_model=list[DatabaseOut])
async def list_databases(
    who: Principal = Depends(current_user), svc: DatabaseService = Depends(database_service)
) -> list[DatabaseOut]:
    return [database_out(db) for db in await svc.list(who)]


@router.get("/{db_id}", response_model=DatabaseOut)
async def get_database(db: Database = Depends(owned_database)) -> DatabaseOut:
    return database_out(db)


@router.delete("/{db_id}", status_code=202, response_model=DatabaseOut)
async def delete_database(
    db: Database = Depends(owned_database), svc: DatabaseService = Depends(database_service)
) -> DatabaseOut:
    await svc.delete(db)
    return database_out(await svc.store.get(db.id))


@router.post("/{db_id}/restart", status_code=202, response_model=DatabaseOut)
async def restart_database(
    db: Database = Depends(owned_database), svc: DatabaseService = Depends(database_service)
) -> DatabaseOut:
    await svc.restart(db)
    return database_out(await svc.store.get(db.id))


@router.get("/{db_id}/credentials", response_model=CredentialsOut)
async def database_credentials(
    response: Response,
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> CredentialsOut:
    response.headers["Cache-Control"] = "no-store"
    return CredentialsOut(**svc.credentials(db).__dict__)


@router.get("/{db_id}/attachments", response_model=list[AttachmentOut])
async def list_attachments(
    db: Database = Depends(owned_database), svc: DatabaseService = Depends(database_service)
) -> list[AttachmentOut]:
    return [
        AttachmentOut(app_id=a.app_id, app_name=name, env_name=a.env_name, created_at=a.created_at)
        for a, name in await svc.attachments(db)
    ]


@router.post("/{db_id}/attachments", status_code=201, response_model=AttachmentOut)
async def attach_database(
    body: AttachRequest,
    who: Principal = Depends(current_user),
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> AttachmentOut:
    link = await svc.attach(who, db, body.app_id, body.env_name)
    app = await svc.apps.get(link.app_id)
    return AttachmentOut(
        app_id=link.app_id, app_name=app.name, env_name=link.env_name, created_at=link.created_at
    )


@router.delete("/{db_id}/attachments/{app_id}", status_code=204)
async def detach_database(
    app_id: str,
    who: Principal = Depends(current_user),
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> Response:
    await svc.detach(who, db, app_id)
    return Response(status_code=204)


@router.post("/{db_id}/backups", status_code=202, response_model=BackupOut)
async def create_backup(
    db: Database = Depends(owned_database), backups: BackupService = Depends(backup_service)
) -> BackupOut:
    return backup_out(await backups.start(db))


@router.get("/{db_id}/backups", response_model=list[BackupOut])
async def list_backups(
    db: Database = Depends(owned_database), backups: BackupService = Depends(backup_service)
) -> list[BackupOut]:
    return [backup_out(b) for b in await backups.list(db)]


@router.get("/{db_id}/backups/{backup_id}", response_model=BackupOut)
async def get_backup(
    backup_id: str,
    db: Database = Depends(owned_database),
    backups: BackupService = Depends(backup_service),
) -> BackupOut:
    return backup_out(await backups.get(db, backup_id))


@router.get("/{db_id}/backups/{backup_id}/download")
async def download_backup(
    backup_id: str,
    db: Database = Depends(owned_database),
    backups: BackupService = Depends(backup_service),
) -> FileResponse:
    backup = await backups.get(db, backup_id)
    if backup.status != BackupStatus.SUCCEEDED or not backup.file_name:
        raise Conflict("only a verified backup can be downloaded", code="backup_not_usable")
    path = backups.path_of(db, backup)
    return FileResponse(path, media_type="application/octet-stream", filename=backup.file_name)


@router.post("/{db_id}/backups/{backup_id}/restore", response_model=BackupOut)
async def restore_backup(
    backup_id: str,
    db: Database = Depends(owned_database),
    backups: BackupService = Depends(backup_service),
) -> BackupOut:
    """Restore (waits until done); answers with the safety backup taken just before."""
    return backup_out(await backups.restore(db, await backups.get(db, backup_id)))
