"""Prepare the S3 bucket media live in, and say what was done:

- the bucket exists (created with --create, when the credentials allow);
- a CORS rule lets browsers on this site POST uploads straight to it
  (presigned POST policies) and read what they are sent to: origins from
  SITE_URL and CSRF_TRUSTED_ORIGINS; other rules on the bucket are kept;
- the bucket policy and ACL grant nothing to the public: media are served
  through short-lived presigned links only, after our access checks.

On the embedded default (files under MEDIA_ROOT) there is nothing to do.
Safe to run again: an up-to-date bucket is left as it is."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from galleries.storage import S3MediaStore, media_store

RULE_ID = "studio-browser-uploads"
PUBLIC_GROUPS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


def browser_origins() -> list[str]:
    origins = []
    for url in [settings.SITE_URL, *settings.CSRF_TRUSTED_ORIGINS]:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def cors_rule(origins: list[str]) -> dict[str, Any]:
    return {
        "ID": RULE_ID,
        "AllowedOrigins": origins,
        # POST: the presigned upload form; GET/HEAD: previews and downloads
        # fetched by scripts. The form's fields ride as multipart, any header.
        "AllowedMethods": ["GET", "HEAD", "POST"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }


class Command(BaseCommand):
    help = "Create the media bucket (--create), apply the CORS rule browser uploads need, check it is not public."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--create", action="store_true", help="Create the bucket if it does not exist.")

    def handle(self, *args: Any, **options: Any) -> None:
        store = media_store()
        if not isinstance(store, S3MediaStore):
            self.stdout.write(f"Media are stored on this machine ({settings.MEDIA_ROOT}): there is nothing to set up.")
            return
        from botocore.exceptions import ClientError

        client, bucket = store.client, store.bucket
        try:
            self._bucket(client, bucket, create=options["create"])
            self._cors(client, bucket)
            problems = self._policy(client, bucket)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise CommandError(f"S3 refused: {error.get('Code')} {error.get('Message', '')}".strip()) from exc
        if problems:
            for problem in problems:
                self.stderr.write(self.style.WARNING(problem))
            raise CommandError("The bucket is readable by the public: make it private (see above).")
        self.stdout.write(self.style.SUCCESS(f"Bucket {bucket} is ready."))

    def _bucket(self, client: Any, bucket: str, *, create: bool) -> None:
        from botocore.exceptions import ClientError

        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            if not create:
                raise CommandError(f"Bucket {bucket} does not exist: run with --create to create it.") from exc
            region = client.meta.region_name
            extra = (
                {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            )
            client.create_bucket(Bucket=bucket, **extra)
            self.stdout.write(f"Created bucket {bucket}.")
            return
        self.stdout.write(f"Bucket {bucket} exists.")

    def _cors(self, client: Any, bucket: str) -> None:
        from botocore.exceptions import ClientError

        origins = browser_origins()
        if not origins:
            raise CommandError("Set SITE_URL (or CSRF_TRUSTED_ORIGINS): browsers upload from there.")
        try:
            rules = client.get_bucket_cors(Bucket=bucket).get("CORSRules", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
                raise
            rules = []
        wanted = cors_rule(origins)
        ours = next((rule for rule in rules if rule.get("ID") == RULE_ID), None)
        if ours is not None and all(ours.get(k) == v for k, v in wanted.items()):
            self.stdout.write(f"CORS rule {RULE_ID} is up to date ({', '.join(origins)}).")
            return
        # Other rules (a CDN's, another app's) are the operator's: kept.
        others = [rule for rule in rules if rule.get("ID") != RULE_ID]
        client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [*others, wanted]})
        self.stdout.write(f"Applied CORS rule {RULE_ID}: POST, GET, HEAD from {', '.join(origins)}.")

    def _policy(self, client: Any, bucket: str) -> list[str]:
        from botocore.exceptions import ClientError

        problems = []
        try:
            policy = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucketPolicy":
                raise
            policy = {}
        for statement in policy.get("Statement", []):
            principal = statement.get("Principal")
            public = principal == "*" or (isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"]))
            if statement.get("Effect") == "Allow" and public:
                problems.append(
                    f"The bucket policy allows {statement.get('Action')} to anyone ({statement.get('Sid', 'no Sid')})."
                )
        for grant in client.get_bucket_acl(Bucket=bucket).get("Grants", []):
            if grant.get("Grantee", {}).get("URI") in PUBLIC_GROUPS:
                problems.append(f"The bucket ACL grants {grant.get('Permission')} to {grant['Grantee']['URI']}.")
        if not problems:
            self.stdout.write("Policy: nothing is public (media go out as presigned links only).")
        return problems
