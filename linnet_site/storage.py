"""How collected static files are stored: hashed names, gzip and Brotli copies."""

from servestatic.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    # The client is plain ES modules: rewrite `import ... from "./api.js"` to the hashed name,
    # so a page never mixes a new module with a cached old one.
    support_js_module_import_aggregation = True
