"""Writes for galleries, by sub-domain:

- ``galleries``: lifecycle, codes and PINs, cover, deletion;
- ``uploads``: upload targets under the quota, checking what arrived, cleanup;
- ``processing``: derivatives (the Celery task's body) and regeneration;
- ``selection``: the client's ratings, folders, trash and finalised selection;
- ``exports``: the export queue (CSV, Lightroom list, contact sheet, ZIP), run
  by ``export_runner``;
- ``sharing``: sending a gallery to its client;
- ``effects``: what a change leaves for after commit (jobs, object deletions);
- ``faces`` and ``persons``: people in photos (opt-in, detection, curation, find me).

Reads are in ``galleries.selectors``. The names below are the public surface,
so callers write ``services.gallery_publish(...)``.
"""

from galleries.services.exports import (
    ExportCancelled,
    ExportProblem,
    export_cancel,
    export_download,
    export_request,
    export_run,
    exports_expire,
    exports_lost,
)
from galleries.services.faces import (
    FacesDisabled,
    asset_detect_faces,
    faces_queue,
    find_me_active,
    gallery_faces_set,
    studio_faces_disable,
    studio_faces_enable,
)
from galleries.services.galleries import (
    asset_delete,
    asset_purge,
    asset_restore,
    assets_purge_binned,
    binned_assets_due,
    gallery_create,
    gallery_delete,
    gallery_publish,
    gallery_rotate_code,
    gallery_set_cover,
    gallery_unpublish,
    gallery_update,
    generate_access_code,
    normalise_code,
    validate_access_code,
)
from galleries.services.persons import (
    FindMeDisabled,
    InvalidPerson,
    InvalidSelfie,
    find_me_not_me,
    find_me_search,
    person_merge,
    person_split,
    person_update,
)
from galleries.services.processing import asset_process, assets_give_up, assets_regenerate
from galleries.services.selection import (
    SelectionLocked,
    assets_trash,
    folder_create,
    folder_delete,
    folder_rename,
    folders_reorder,
    placements_add,
    placements_move,
    placements_remove,
    placements_reorder,
    ratings_set,
    selection_finalize,
    selection_reopen,
)
from galleries.services.sharing import gallery_send
from galleries.services.uploads import (
    CompleteResult,
    FileRequest,
    PresignResult,
    QuotaExceeded,
    upload_complete,
    upload_presign,
    uploads_cleanup,
)

__all__ = [
    "FacesDisabled",
    "FindMeDisabled",
    "InvalidPerson",
    "InvalidSelfie",
    "asset_detect_faces",
    "faces_queue",
    "find_me_active",
    "find_me_not_me",
    "find_me_search",
    "gallery_faces_set",
    "person_merge",
    "person_split",
    "person_update",
    "studio_faces_disable",
    "studio_faces_enable",
    "ExportCancelled",
    "ExportProblem",
    "export_cancel",
    "export_download",
    "export_request",
    "export_run",
    "exports_expire",
    "exports_lost",
    "gallery_send",
    "CompleteResult",
    "FileRequest",
    "PresignResult",
    "QuotaExceeded",
    "SelectionLocked",
    "asset_delete",
    "asset_purge",
    "asset_restore",
    "assets_purge_binned",
    "binned_assets_due",
    "asset_process",
    "assets_give_up",
    "assets_regenerate",
    "assets_trash",
    "folder_create",
    "folder_delete",
    "folder_rename",
    "folders_reorder",
    "gallery_create",
    "gallery_delete",
    "gallery_publish",
    "gallery_rotate_code",
    "gallery_set_cover",
    "gallery_unpublish",
    "gallery_update",
    "generate_access_code",
    "normalise_code",
    "placements_add",
    "placements_move",
    "placements_remove",
    "placements_reorder",
    "ratings_set",
    "selection_finalize",
    "selection_reopen",
    "upload_complete",
    "upload_presign",
    "uploads_cleanup",
    "validate_access_code",
]
