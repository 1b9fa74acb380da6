#!/usr/bin/env bash
# Install linewarden from this offline bundle into a virtual environment, with no package index.
#
#   ./install.sh [--prefix /opt/linewarden/venv] [--extras collector,postgres] [--python python3]
#
# Works from any directory. The wheels directory is picked for this machine (linux x86_64 or aarch64,
# or `current` when the bundle was built for the build host only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=/opt/linewarden/venv
extras=$(cat "$here/EXTRAS")
PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --extras) extras=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    -h|--help) sed -n 2,7p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$(uname -m)" in
  x86_64|amd64) plat=linux_x86_64 ;;
  aarch64|arm64) plat=linux_aarch64 ;;
  *) plat=unknown ;;
esac
wheels=$here/wheels/$plat
[ -d "$wheels" ] || wheels=$here/wheels/current
[ -d "$wheels" ] || { echo "this bundle has no wheels for $(uname -m)" >&2; exit 1; }
version=$(cat "$here/VERSION")
[ -x "$prefix/bin/python" ] || "$PY" -m venv "$prefix"
# --no-index: never look for a package index (closed plant networks have none)
PIP_CONFIG_FILE=/dev/null "$prefix/bin/python" -m pip install --quiet --no-index --find-links "$wheels" \
  "linewarden[$extras]==$version"
echo "linewarden $version installed in $prefix ($("$prefix/bin/linewarden" --version))"
