"""The one registry of API error codes, like ``studio.audit_actions`` for
audit events. Every error body's ``code`` is one of these: ``DomainError``
refuses any other, and a test walks the source for codes that are not here.
The label says what the code means, for whoever writes a client; the OpenAPI
schema lists them all.
"""

from django.db import models


class ErrorCode(models.TextChoices):
    # --- requests ------------------------------------------------------------------------------------
    VALIDATION_ERROR = "VALIDATION_ERROR", "Some fields are invalid: see fields (and details.field_codes)."
    MALFORMED_REQUEST = "MALFORMED_REQUEST", "The body could not be parsed."
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE", "The body's content type is not accepted."
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE", "No representation matches the Accept header."
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED", "This endpoint does not take that HTTP method."
    THROTTLED = "THROTTLED", "Too many requests: see details.retry_after_seconds."
    # 503s: a dependency is down; nothing was changed, the same request may be retried.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE", "A service we depend on is unreachable: retry shortly."
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE", "File storage is unreachable: retry shortly."
    NOT_FOUND = "NOT_FOUND", "No such object here (or none you may see)."
    INVALID_CURSOR = "INVALID_CURSOR", "The cursor is not one this list gave out: start again without it."
    SERVER_ERROR = "SERVER_ERROR", "Something went wrong on our side; the request id helps us find it."
    ERROR = "ERROR", "An error without a more specific code."
    # --- who you are ----------------------------------------------------------------------------------
    NOT_AUTHENTICATED = "NOT_AUTHENTICATED", "Sign in, or send an API token."
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED", "The API token or credentials are not valid."
    PERMISSION_DENIED = "PERMISSION_DENIED", "Your role does not allow this."
    ROLE_ABOVE_YOURS = "ROLE_ABOVE_YOURS", "You cannot grant, or act on, a role above your own."
    # --- generic domain ---------------------------------------------------------------------------------
    DOMAIN_ERROR = "DOMAIN_ERROR", "The request breaks a business rule."
    CONFLICT = "CONFLICT", "The request conflicts with the current state."
    DUPLICATE_NAME = "DUPLICATE_NAME", "Another object here already has that name."
    # --- studios, members, invitations ---------------------------------------------------------------
    SLUG_TAKEN = "SLUG_TAKEN", "Another studio uses that slug."
    ALREADY_MEMBER = "ALREADY_MEMBER", "That person is already a member of this studio."
    UNKNOWN_ROLE = "UNKNOWN_ROLE", "No such role."
    LAST_OWNER = "LAST_OWNER", "A studio must keep at least one owner."
    MEMBER_OF_ANOTHER_STUDIO = "MEMBER_OF_ANOTHER_STUDIO", "Members must belong to this studio."
    INVITATION_INVALID = "INVITATION_INVALID", "The invitation link is invalid, expired, revoked or used."
    INVITATION_NOT_PENDING = "INVITATION_NOT_PENDING", "The invitation is no longer pending."
    INVITATION_EMAIL_MISMATCH = "INVITATION_EMAIL_MISMATCH", "The invitation was sent to another address."
    # --- galleries: staff -------------------------------------------------------------------------------
    ACCESS_CODE_TAKEN = "ACCESS_CODE_TAKEN", "Another gallery of the studio uses that code."
    INVALID_ACCESS_CODE = "INVALID_ACCESS_CODE", "Access codes are 4 to 32 letters and digits."
    INVALID_PIN = "INVALID_PIN", "A PIN is 4 to 8 digits."
    INVALID_COVER = "INVALID_COVER", "The cover must be a ready photo of this gallery."
    STORAGE_QUOTA_EXCEEDED = "STORAGE_QUOTA_EXCEEDED", "The upload would exceed the quota: see details."
    # The embedded default's upload target (S3's presigned POST answers in XML).
    UPLOAD_EXPIRED = "UPLOAD_EXPIRED", "The upload link expired: ask for a new one."
    UPLOAD_POLICY_INVALID = "UPLOAD_POLICY_INVALID", "The upload does not match its signed link."
    ENTITY_TOO_LARGE = "ENTITY_TOO_LARGE", "The file is larger than announced."
    ENTITY_SIZE_MISMATCH = "ENTITY_SIZE_MISMATCH", "The file's size is not the one announced."
    UPLOAD_NOT_EXPECTED = "UPLOAD_NOT_EXPECTED", "The file was already uploaded, or the upload was cancelled."
    NO_FINALIZED_SELECTION = "NO_FINALIZED_SELECTION", "There is no finalised selection to reopen."
    GALLERY_NOT_PUBLISHED = "GALLERY_NOT_PUBLISHED", "Publish the gallery before sending it to the client."
    NO_CLIENT_EMAIL = "NO_CLIENT_EMAIL", "The gallery has no client email address to send to."
    NOT_IN_BIN = "NOT_IN_BIN", "The photo is not in the bin (delete it first)."
    DUPLICATE_CONTENT = "DUPLICATE_CONTENT", "The same photo is already in this gallery."
    # --- exports (staff and portal) ----------------------------------------------------------------------
    EXPORT_FINISHED = "EXPORT_FINISHED", "The export already ended (done, failed, cancelled or expired)."
    EXPORT_NOT_READY = "EXPORT_NOT_READY", "The export is not done yet: poll it until its status is done."
    EXPORT_EXPIRED = "EXPORT_EXPIRED", "The export's file was deleted after its expiry: ask for it again."
    # --- galleries: the client portal ----------------------------------------------------------------------
    ACCESS_DENIED = "ACCESS_DENIED", "The gallery code or PIN is not right."
    PIN_REQUIRED = "PIN_REQUIRED", "This gallery needs its PIN too."
    IDENTITY_REQUIRED = "IDENTITY_REQUIRED", "The studio asks for your name and email first."
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS", "Too many wrong codes or PINs: see details.retry_after_seconds."
    GALLERY_UNAVAILABLE = "GALLERY_UNAVAILABLE", "The gallery is not published."
    GALLERY_EXPIRED = "GALLERY_EXPIRED", "The gallery has expired."
    PORTAL_SESSION_REQUIRED = "PORTAL_SESSION_REQUIRED", "Open the gallery with its code first."
    DOWNLOAD_NOT_ALLOWED = "DOWNLOAD_NOT_ALLOWED", "The studio does not allow this download."
    INVALID_STARS = "INVALID_STARS", "Stars go from 1 to 5."
    INVALID_FOLDER = "INVALID_FOLDER", "The folders must belong to the same gallery."
    NOT_IN_FOLDER = "NOT_IN_FOLDER", "Some photos are not in that folder."
    INCOMPLETE_ORDER = "INCOMPLETE_ORDER", "List every folder exactly once."
    SELECTION_FINALIZED = "SELECTION_FINALIZED", "The selection is finalised: read-only until reopened."
    EMPTY_SELECTION = "EMPTY_SELECTION", "Rate or file at least one photo first."
    SELECTION_LIMIT_EXCEEDED = "SELECTION_LIMIT_EXCEEDED", "More photos chosen than the gallery allows."
    NOT_FINALIZED = "NOT_FINALIZED", "Nothing is finalised yet."
    # --- people in photos ------------------------------------------------------------------------------
    FACES_DISABLED = "FACES_DISABLED", "People in photos is off for this studio or gallery."
    FIND_ME_DISABLED = "FIND_ME_DISABLED", 'The studio does not offer "find me" in this gallery.'
    INVALID_SELFIE = "INVALID_SELFIE", "The selfie cannot be used: see details.reason (no_face, several_faces...)."
    TOO_MANY_SEARCHES = "TOO_MANY_SEARCHES", 'Too many "find me" searches: see details.retry_after_seconds.'
    INVALID_PERSON = "INVALID_PERSON", "The person, or the face, is not one of this gallery's."
    # --- bookings ---------------------------------------------------------------------------------------
    SERVICE_INACTIVE = "SERVICE_INACTIVE", "The service cannot be booked."
    SERVICE_IN_USE = "SERVICE_IN_USE", "The service has bookings: deactivate it instead."
    MEMBER_NOT_ON_SERVICE = "MEMBER_NOT_ON_SERVICE", "That member does not provide this service."
    SLOT_UNAVAILABLE = "SLOT_UNAVAILABLE", "That time is not available (any more)."
    NOT_HELD = "NOT_HELD", "The booking is not held."
    HOLD_EXPIRED = "HOLD_EXPIRED", "The hold expired: pick the time again."
    NOT_LIVE = "NOT_LIVE", "The booking is cancelled or completed."
    NOT_CONFIRMED = "NOT_CONFIRMED", "Only a confirmed booking can be completed."
    ALREADY_COMPLETED = "ALREADY_COMPLETED", "A completed booking cannot be cancelled."
    ALREADY_CONVERTED = "ALREADY_CONVERTED", "The enquiry already became a booking."
    OUTSIDE_CANCELLATION_WINDOW = "OUTSIDE_CANCELLATION_WINDOW", "Too close to the session to change it online."
    DEPOSIT_REQUIRED = "DEPOSIT_REQUIRED", "The booking needs its deposit first."
    NO_DEPOSIT = "NO_DEPOSIT", "The booking has no deposit to pay."
    ALREADY_PAID = "ALREADY_PAID", "The deposit is already paid."
    INVALID_WEBHOOK = "INVALID_WEBHOOK", "The webhook signature or payload is invalid."
    PAYMENT_PROVIDER_UNAVAILABLE = "PAYMENT_PROVIDER_UNAVAILABLE", "The payment provider is unreachable: retry shortly."
