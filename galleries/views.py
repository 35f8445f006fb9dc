"""The embedded default's stand-in for S3's presigned POST."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from galleries.models import Asset, AssetStatus
from galleries.storage import LOCAL_UPLOAD_SALT, LocalMediaStore, media_store
from studio.error_codes import ErrorCode
from studio.errors import error_body
from studio.tenancy import unscoped

# Room for the form fields around the file in a multipart body.
_MULTIPART_OVERHEAD = 16 * 1024


def _refuse(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(ErrorCode(code).value, message), status=status)  # registered, or ValueError


@csrf_exempt  # like S3: the signed policy is the credential, not a cookie
@require_POST
def local_upload(request: HttpRequest) -> HttpResponse:
    """Applies the rules an S3 POST policy carries: the key, the exact size,
    the content type, and the 15-minute expiry."""
    # The policy rides in the URL so it is checked before the body is read.
    try:
        policy = signing.loads(
            request.GET.get("policy", ""), salt=LOCAL_UPLOAD_SALT, max_age=settings.UPLOAD_URL_TTL_SECONDS
        )
    except signing.SignatureExpired:
        return _refuse(403, "UPLOAD_EXPIRED", "This upload link expired. Ask for a new one.")
    except signing.BadSignature:
        return _refuse(403, "UPLOAD_POLICY_INVALID", "This upload link is not valid.")
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > policy["size"] + _MULTIPART_OVERHEAD:
        return _refuse(400, "ENTITY_TOO_LARGE", "The file is larger than announced.")
    upload = request.FILES.get("file")
    if request.POST.get("key") != policy["key"]:
        return _refuse(403, "UPLOAD_POLICY_INVALID", "The key does not match the upload link.")
    if request.POST.get("Content-Type") != policy["type"]:
        return _refuse(403, "UPLOAD_POLICY_INVALID", "The content type does not match the upload link.")
    if upload is None:
        return _refuse(400, "VALIDATION_ERROR", "Send the file in the 'file' field.")
    if upload.size != policy["size"]:
        return _refuse(400, "ENTITY_SIZE_MISMATCH", f"The file is {upload.size} bytes, not {policy['size']}.")
    with unscoped():  # the signed key names the asset, whichever studio it is in
        waiting = Asset.objects.filter(upload_key=policy["key"], status=AssetStatus.AWAITING_UPLOAD).exists()
    if not waiting:
        return _refuse(409, "UPLOAD_NOT_EXPECTED", "This file was already uploaded or the upload was cancelled.")
    store = media_store()
    assert isinstance(store, LocalMediaStore)  # targets point here only on the local backend
    store.write_upload(policy["key"], upload.chunks(), policy["type"])
    return HttpResponse(status=204)
