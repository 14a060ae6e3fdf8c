"""/databases: database add-ons of SPEC §4 (PostgreSQL, MariaDB, Redis), their credentials,
attachments to the owner's apps, and verified backups. Another user's ids answer 404."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ipaas.api.deps import current_user
from ipaas.api.schemas import DNS_LABEL, Strict
from ipaas.apps.service import Principal
from ipaas.config import DatabaseSettings
from ipaas.databases.backups import BackupService
from ipaas.databases.rotation import CredentialRotation
from ipaas.databases.schedule import keep_of, plan_of
from ipaas.databases.service import DatabaseRequest, DatabaseService
from ipaas.databases.viewer import MAX_SQL_CHARS, DataViewer
from ipaas.domain.cron import MAX_LENGTH as CRON_MAX_LENGTH
from ipaas.domain.cron import parse_cron
from ipaas.domain.databases import BackupPlan, BackupStatus
from ipaas.domain.errors import Conflict, InvalidInput
from ipaas.runtime.databases import host_name
from ipaas.store.models import Database, DatabaseBackup, DatabaseEvent, DatabaseJob

router = APIRouter(prefix="/databases", tags=["databases"])


def database_service(request: Request) -> DatabaseService:
    return cast(DatabaseService, request.app.state.database_service)


def backup_service(request: Request) -> BackupService:
    return cast(BackupService, request.app.state.backup_service)


def rotation(request: Request) -> CredentialRotation:
    return cast(CredentialRotation, request.app.state.rotation)


def data_viewer(request: Request) -> DataViewer:
    return cast(DataViewer, request.app.state.data_viewer)


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
    backup_cron: str | None = Field(description="the backup schedule in cron syntax (UTC)")
    backup_interval_s: int | None = Field(description="seconds between backups; None: cron")
    backup_keep: int
    created_at: datetime
    updated_at: datetime


class CredentialsOut(BaseModel):
    username: str
    password: str
    database: str
    host: str
    port: int
    url: str


class ShellOut(BaseModel):
    """How `ipaas db shell` starts the engine's client in the database's own container: with
    `docker exec -i -u USER -e NAME...`, each `env` value passed through the exec's environment
    (never on a command line)."""

    container_id: str
    user: str
    argv: list[str]
    env: dict[str, str]


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


class ScheduleRequest(Strict):
    """One of `cron` and `interval_s`."""

    cron: str | None = Field(
        default=None,
        max_length=CRON_MAX_LENGTH,
        description="minute hour day-of-month month day-of-week (UTC), or @hourly, @daily, ...",
    )
    interval_s: int | None = Field(
        default=None, ge=0, le=31 * 86400, description="0: no scheduled backups"
    )
    keep: int = Field(ge=1, le=1000, description="scheduled backups kept")


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    detail: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class EventOut(BaseModel):
    id: int
    database_id: str
    database_name: str
    kind: str
    message: str
    detail: dict[str, Any]
    at: datetime


class TableOut(BaseModel):
    schema_name: str
    name: str
    estimated_rows: int | None


class ColumnOut(BaseModel):
    name: str
    type: str | None
    primary_key: bool


class RowsOut(BaseModel):
    table: TableOut
    columns: list[ColumnOut]
    rows: list[list[Any]]
    truncated: bool = Field(description="more rows follow, or the byte cap cut this page")
    next: str | None = Field(description="pass as `cursor` for the next page; None: the last")
    paging: str = Field(
        description="key: in the order of the primary (or a unique NOT NULL) key; ctid: "
        "PostgreSQL's row ids (no such key); offset: a view or a keyless MariaDB table"
    )
    order_by: list[str]


class QueryRequest(Strict):
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS)


class QueryOut(BaseModel):
    columns: list[ColumnOut]
    rows: list[list[Any]]
    truncated: bool


class KeysOut(BaseModel):
    cursor: str
    keys: list[dict[str, Any]]


def database_out(db: Database, settings: DatabaseSettings) -> DatabaseOut:
    return DatabaseOut(
        id=db.id, name=db.name, engine=db.engine, version=db.version, memory_mb=db.memory_mb,
        cpus=db.cpus, state=db.state, state_reason=db.state_reason, host=host_name(db.id),
        backup_cron=(plan := plan_of(db, settings)).cron,
        backup_interval_s=None if plan.cron else plan.interval_s, backup_keep=keep_of(db, settings),
        created_at=db.created_at, updated_at=db.updated_at,
    )  # fmt: skip


def event_out(e: DatabaseEvent) -> EventOut:
    return EventOut(
        id=e.id, database_id=e.database_id, database_name=e.database_name, kind=e.kind,
        message=e.message, detail=e.detail, at=e.at,
    )  # fmt: skip


def job_out(job: DatabaseJob) -> JobOut:
    return JobOut(
        id=job.id, kind=job.kind, status=job.status, detail=job.detail, error=job.error,
        created_at=job.created_at, finished_at=job.finished_at,
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
    return database_out(await svc.create(who, request), svc.settings)


@router.get("", response_model=list[DatabaseOut])
async def list_databases(
    who: Principal = Depends(current_user), svc: DatabaseService = Depends(database_service)
) -> list[DatabaseOut]:
    return [database_out(db, svc.settings) for db in await svc.list(who)]


@router.get("/events", response_model=list[EventOut])
async def list_all_events(
    after: int = Query(0, ge=0, le=2**62),
    who: Principal = Depends(current_user),
    svc: DatabaseService = Depends(database_service),
) -> list[EventOut]:
    """Events of all the caller's databases, deleted ones too (a final backup's whereabouts),
    oldest first after the id `after`."""
    return [event_out(e) for e in await svc.store.events(owner_id=who.user_id, after_id=after)]


@router.get("/{db_id}", response_model=DatabaseOut)
async def get_database(
    db: Database = Depends(owned_database), svc: DatabaseService = Depends(database_service)
) -> DatabaseOut:
    return database_out(db, svc.settings)


@router.delete("/{db_id}", status_code=202, response_model=DatabaseOut)
async def delete_database(
    final_backup: bool = Query(True, description="take a verified backup first, kept a while"),
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> DatabaseOut:
    await svc.delete(db, final_backup)
    return database_out(await svc.store.get(db.id), svc.settings)


@router.post("/{db_id}/restart", status_code=202, response_model=DatabaseOut)
async def restart_database(
    db: Database = Depends(owned_database), svc: DatabaseService = Depends(database_service)
) -> DatabaseOut:
    await svc.restart(db)
    return database_out(await svc.store.get(db.id), svc.settings)


@router.get("/{db_id}/credentials", response_model=CredentialsOut)
async def database_credentials(
    response: Response,
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> CredentialsOut:
    response.headers["Cache-Control"] = "no-store"
    return CredentialsOut(**svc.credentials(db).__dict__)


@router.get("/{db_id}/shell", response_model=ShellOut)
async def database_shell(
    response: Response,
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> ShellOut:
    """What `ipaas db shell` needs to run psql / mariadb / redis-cli inside the database's
    container on the platform's host (owner only; it holds the password)."""
    response.headers["Cache-Control"] = "no-store"
    return ShellOut(**svc.shell(db).__dict__)


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


@router.post("/{db_id}/backups/{backup_id}/restore", status_code=202, response_model=JobOut)
async def restore_backup(
    backup_id: str,
    db: Database = Depends(owned_database),
    backups: BackupService = Depends(backup_service),
) -> JobOut:
    """Start a restore job: a safety backup of the data there now, then the backup put back
    (all or nothing). Follow it at /jobs/{id}; its detail names the safety backup."""
    return job_out(await backups.start_restore(db, await backups.get(db, backup_id)))


@router.put("/{db_id}/backup-schedule", response_model=DatabaseOut)
async def set_backup_schedule(
    body: ScheduleRequest,
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> DatabaseOut:
    """A cron expression (`invalid_cron` when it is not one) or an interval, and how many
    scheduled backups are kept; `schedule_too_frequent` when two backups would come closer
    than `databases.min_backup_interval_s`."""
    if (body.cron is None) == (body.interval_s is None):
        raise InvalidInput("give one of cron and interval_s", code="invalid_schedule")
    cron = parse_cron(body.cron) if body.cron is not None else None
    BackupPlan(cron=cron, interval_s=body.interval_s or 0).check_spacing(
        svc.settings.min_backup_interval_s
    )
    await svc.store.set_fields(
        db.id, backup_cron=cron, backup_interval_s=body.interval_s, backup_keep=body.keep
    )
    return database_out(await svc.store.get(db.id), svc.settings)


@router.post("/{db_id}/credentials/rotate", status_code=202, response_model=JobOut)
async def rotate_credentials(
    db: Database = Depends(owned_database), rotations: CredentialRotation = Depends(rotation)
) -> JobOut:
    """Start a rotation job: a new login works before the old one is revoked; attached apps
    are rolled out onto it in between."""
    return job_out(await rotations.start(db))


@router.get("/{db_id}/jobs", response_model=list[JobOut])
async def list_jobs(
    db: Database = Depends(owned_database), backups: BackupService = Depends(backup_service)
) -> list[JobOut]:
    return [job_out(j) for j in await backups.jobs(db)]


@router.get("/{db_id}/jobs/{job_id}", response_model=JobOut)
async def get_job(
    job_id: str,
    db: Database = Depends(owned_database),
    backups: BackupService = Depends(backup_service),
) -> JobOut:
    return job_out(await backups.job(db, job_id))


@router.get("/{db_id}/events", response_model=list[EventOut])
async def list_events(
    after: int = Query(0, ge=0, le=2**62),
    db: Database = Depends(owned_database),
    svc: DatabaseService = Depends(database_service),
) -> list[EventOut]:
    """What happened to the database (backups failed or overdue, restores, rotations)."""
    return [event_out(e) for e in await svc.store.events(database_id=db.id, after_id=after)]


# --- the data viewer ---------------------------------------------------------------------------
@router.get("/{db_id}/tables", response_model=list[TableOut])
async def list_tables(
    db: Database = Depends(owned_database), viewer: DataViewer = Depends(data_viewer)
) -> list[TableOut]:
    return [
        TableOut(schema_name=t.schema, name=t.name, estimated_rows=t.estimated_rows)
        for t in await viewer.tables(db)
    ]


@router.get("/{db_id}/rows", response_model=RowsOut)
async def table_rows(
    table: str = Query(..., min_length=1, max_length=256),
    schema: str | None = Query(None, max_length=256),
    limit: int = Query(100, ge=1, le=100_000),
    cursor: str | None = Query(None, min_length=1, max_length=4096),
    db: Database = Depends(owned_database),
    viewer: DataViewer = Depends(data_viewer),
) -> RowsOut:
    """A page of a table's rows, in its key's order, with its columns and their types; the
    next page is asked with `cursor` set to this one's `next` (422 `invalid_cursor` for one
    the viewer did not give for this table, 409 `stale_cursor` when the table's key changed)."""
    page = await viewer.rows(db, table, schema, limit, cursor)
    found = page.table
    return RowsOut(
        table=TableOut(
            schema_name=found.schema, name=found.name, estimated_rows=found.estimated_rows
        ),
        columns=[ColumnOut(**c.__dict__) for c in page.columns],
        rows=page.rows,
        truncated=page.truncated,
        next=page.next,
        paging=page.paging,
        order_by=page.order_by,
    )


@router.post("/{db_id}/query", response_model=QueryOut)
async def run_query(
    body: QueryRequest,
    db: Database = Depends(owned_database),
    viewer: DataViewer = Depends(data_viewer),
) -> QueryOut:
    """The read-only SQL console: one query as the SELECT-only login, with a statement
    timeout and a row cap (`truncated` says more rows were left)."""
    result = await viewer.console(db, body.sql)
    return QueryOut(
        columns=[ColumnOut(**c.__dict__) for c in result.columns],
        rows=result.rows,
        truncated=result.truncated,
    )


@router.get("/{db_id}/keys", response_model=KeysOut)
async def redis_keys(
    pattern: str = Query("*", min_length=1, max_length=512),
    cursor: str = Query("0", max_length=20),
    count: int = Query(100, ge=1, le=1000),
    db: Database = Depends(owned_database),
    viewer: DataViewer = Depends(data_viewer),
) -> KeysOut:
    """One SCAN step of a Redis database: keys with type, TTL (ms, -1 none), size and a capped
    preview; go on with the `cursor` given until it is "0"."""
    return KeysOut(**await viewer.keys(db, pattern, cursor, count))
