#!/usr/bin/env bash
# Refresh the third-party browser assets shipped in app/console/static/vendor from their npm
# packages (run by hand when upgrading; the service never fetches anything at run time).
# Redoc's sidebar shows a logo from its CDN; it is replaced by an empty inline image so the docs
# page makes no outside request.
set -euo pipefail
SWAGGER=${SWAGGER:-swagger-ui-dist@5.35.0}
REDOC=${REDOC:-redoc@2.5.4}
out="$(cd "$(dirname "$0")/.." && pwd)/app/console/static/vendor"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "$SWAGGER" "$REDOC" >/dev/null
mkdir swagger redoc
tar xzf swagger-ui-dist-*.tgz -C swagger
tar xzf redoc-*.tgz -C redoc
cp swagger/package/swagger-ui-bundle.js swagger/package/swagger-ui.css "$out/"
cp swagger/package/LICENSE "$out/swagger-ui-dist.LICENSE"
sed 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E#' \
  redoc/package/bundles/redoc.standalone.js >"$out/redoc.standalone.js"
cp redoc/package/LICENSE "$out/redoc.LICENSE"
echo "vendored $SWAGGER and $REDOC into $out"
