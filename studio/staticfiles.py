"""Static files in production: whitenoise's compressed, hashed files, with the
import statements of our ES modules rewritten to the hashed names too (the
portal and uploader are plain ES modules, no build step), so a release never
mixes a new module with an old cached one."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
