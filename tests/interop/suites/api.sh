#!/usr/bin/env bash
# The REST API driven by Files.com's own Python SDK (files-com from PyPI), unchanged, with
# base_url pointed at filegate; then a key made through the API signs in over SFTP and the
# actions are read back from /history as the key's owner.
set -euo pipefail
[ -n "$API_ADDR" ] || { echo "api suite: the API is not running"; exit 1; }
exec python3 "$(dirname "$0")/api_sdk.py"
