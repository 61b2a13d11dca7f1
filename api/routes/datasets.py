"""Published datasets for ML engineers and schedulers (reader or admin key): list, manifest,
files."""

from __future__ import annotations

import logging
import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from api.deps import ReaderKeyDep, SettingsDep
from api.errors import ApiError, ErrorPublic
from export.catalog import open_catalog
from export.manifest import Manifest
from flywheel.errors import ExportError, ManifestVersionError, VersionPrunedError

log = logging.getLogger(__name__)
router = APIRouter(tags=["datasets"])

NameParam = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Dataset.")]
VersionParam = Annotated[
    str,
    Path(
        pattern=r"^(v[0-9]{1,9}|latest)$",
        description="Version, e.g. v3, or `latest`: the current one (not superseded).",
    ),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such dataset, version or file."}
}
AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "No bearer key."},
    403: {"model": ErrorPublic, "description": "Neither a reader nor an admin key."},
}


class VersionSummaryPublic(BaseModel):
    """One published version."""

    version: str
    created_at: str
    rows: dict[str, int]
    """Rows per config (dpo, kto, reward)."""
    quality_passed: bool
    superseded_by: str | None = None
    """The version that replaced this one (after an erasure), if any."""


class DatasetPublic(BaseModel):
    """A dataset and its readable versions, oldest first."""

    name: str
    latest: str | None
    """The current version, what ``latest`` stands for: the newest one no erasure superseded
    (null if there is none, or it is damaged)."""
    versions: list[VersionSummaryPublic]
    damaged: list[str] = []
    """Versions whose manifest cannot be read; listed apart so the rest still answer."""


class DatasetListPublic(BaseModel):
    """Every dataset with a published version."""

    datasets: list[DatasetPublic]


def _summary(manifest: Manifest, version: str) -> VersionSummaryPublic:
    return VersionSummaryPublic(
        version=version,
        created_at=manifest.created_at,
        rows={kind: c.rows for kind, c in manifest.counts.items()},
        quality_passed=manifest.quality.success,
        superseded_by=manifest.superseded_by,
    )


@router.get("/v1/datasets", summary="List published datasets", responses=AUTH)
async def list_datasets(_: ReaderKeyDep, settings: SettingsDep) -> DatasetListPublic:
    """Every dataset with at least one published version, and its versions; a version whose
    manifest is damaged (or written by a newer release) is named in ``damaged`` instead of
    failing the whole list."""
    found = []
    catalog = open_catalog(settings, check=False)
    for name in catalog.names():
        summaries, damaged = [], []
        for version in catalog.versions(name):
            try:
                summaries.append(_summary(catalog.read_manifest(name, version), version))
            except ExportError:
                log.warning(
                    "damaged dataset manifest",
                    extra={"fields": {"dataset": name, "version": version}},
                )
                damaged.append(version)
        try:
            latest: str | None = catalog.latest(name)
        except ExportError:
            latest = None
        found.append(DatasetPublic(name=name, latest=latest, versions=summaries, damaged=damaged))
    return DatasetListPublic(datasets=found)


@router.get(
    "/v1/datasets/{name}/versions/{version}",
    summary="A version's manifest",
    responses={
        **AUTH,
        **NOT_FOUND,
        500: {"model": ErrorPublic, "description": "Written by a newer release of the server."},
    },
)
async def get_manifest(
    _: ReaderKeyDep, settings: SettingsDep, name: NameParam, version: VersionParam
) -> Manifest:
    """The manifest (``manifest.json``, upgraded to the current ``manifest_version``): counts
    per config, split and signal, file hashes, lineage, quality. For ``latest``, its
    ``version`` names the version it resolved to: fetch that version's files by name."""
    try:
        return open_catalog(settings, check=False).read_manifest(name, version)
    except ManifestVersionError as exc:
        raise ApiError(500, str(exc), code="manifest_version_unsupported") from None
    except ExportError as exc:
        raise ApiError(404, str(exc), code="not_found") from None


@router.get(
    "/v1/datasets/{name}/versions/{version}/files/{path:path}",
    summary="Download a file of a version",
    response_class=FileResponse,
    responses={
        **AUTH,
        **NOT_FOUND,
        200: {"description": "The file's bytes."},
        410: {"model": ErrorPublic, "description": "A data file retention pruned."},
    },
)
async def get_file(
    _: ReaderKeyDep, settings: SettingsDep, name: NameParam, version: VersionParam, path: str
) -> Response:
    """A file the manifest lists (``README.md``, ``data/dpo/train-00000-of-00001.parquet``...);
    nothing outside the version is reachable. A data file retention pruned
    (``keep_versions``) is 410, saying when and why. On S3 the object is read and sent whole.
    ``X-Dataset-Version`` names the version served (what ``latest`` resolved to)."""
    catalog = open_catalog(settings, check=False)
    try:
        version = catalog.resolve(name, version)
        if catalog.is_local:
            target = catalog.version_file(name, version, path)
            return FileResponse(
                target, filename=target.name, headers={"X-Dataset-Version": version}
            )
        data = catalog.read_file(name, version, path)
    except VersionPrunedError as exc:
        raise ApiError(410, str(exc), code="pruned") from None
    except ExportError as exc:
        raise ApiError(404, str(exc), code="not_found") from None
    filename = path.rsplit("/", 1)[-1]
    media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Dataset-Version": version,
        },
    )
