#!/usr/bin/env bash
# Build an offline bundle: the linewarden wheel and every dependency as wheels, per target platform,
# with the example configs, the packaging files and an install script that needs no package index.
#
#   packaging/bundle/build.sh [--out DIR] [--python 3.11] [--extras collector,postgres] [PLATFORM...]
#
# PLATFORM: linux_x86_64, linux_aarch64, win_amd64 (default: all three), or `current` (this machine's).
# Runs where an index is reachable (CI, a build host); the bundle is then carried onto the plant network.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/dist/bundle
pyver=3.11
extras=collector,postgres
platforms=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --python) pyver=$2; shift 2 ;;
    --extras) extras=$2; shift 2 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) platforms+=("$1"); shift ;;
  esac
done
[ ${#platforms[@]} -gt 0 ] || platforms=(linux_x86_64 linux_aarch64 win_amd64)
PY=${PYTHON:-python3}

version=$(cd "$root" && "$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
rm -rf "$out"
mkdir -p "$out/wheels"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
project=$work/wheel
# build from a copy: setuptools leaves build/ and *.egg-info behind in the tree it builds
mkdir -p "$work/src" "$project"
tar -C "$root" --exclude='./.venv*' --exclude=./.git --exclude=./dist --exclude=./build --exclude='*.egg-info' \
  --exclude=__pycache__ -cf - . | tar -C "$work/src" -xf -
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$project" "$work/src"

# pip --platform tags for each target; manylinux wheels of several glibc baselines are all acceptable
tags() {
  case "$1" in
    linux_x86_64) echo "--platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64 --platform linux_x86_64" ;;
    linux_aarch64) echo "--platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --platform manylinux_2_34_aarch64 --platform linux_aarch64" ;;
    win_amd64) echo "--platform win_amd64" ;;
    current) echo "" ;;
    *) echo "unknown platform $1 (linux_x86_64, linux_aarch64, win_amd64, current)" >&2; exit 2 ;;
  esac
}
for plat in "${platforms[@]}"; do
  dir=$out/wheels/$plat
  mkdir -p "$dir"
  # shellcheck disable=SC2046  # the tags are several words on purpose
  if [ "$plat" = current ]; then
    "$PY" -m pip download --quiet --only-binary=:all: --dest "$dir" --find-links "$project" \
      "linewarden[$extras]==$version"
  else
    "$PY" -m pip download --quiet --only-binary=:all: --dest "$dir" --find-links "$project" \
      $(tags "$plat") --implementation cp --python-version "$pyver" "linewarden[$extras]==$version"
  fi
  if [ "$plat" = win_amd64 ]; then
    # pip evaluates environment markers for the machine it runs on, not for --platform: fetch the
    # Windows-only dependencies (the service layer's pywin32, click's colorama) by name.
    "$PY" -m pip download --quiet --only-binary=:all: --dest "$dir" $(tags "$plat") --implementation cp \
      --python-version "$pyver" "pywin32>=312,<313" colorama
  fi
done
cp -r "$root/config" "$out/config"
mkdir -p "$out/packaging"
cp -r "$root/packaging/systemd" "$root/packaging/windows" "$root/packaging/prometheus" "$root/packaging/grafana" \
  "$out/packaging/"
install -m 0755 "$here/install.sh" "$out/install.sh"
cp "$here/install.ps1" "$out/install.ps1"
printf '%s\n' "$version" > "$out/VERSION"
printf '%s\n' "$extras" > "$out/EXTRAS"
echo "bundle: $out (linewarden $version; ${platforms[*]})"
