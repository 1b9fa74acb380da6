#!/usr/bin/env bash
# Install the linewarden collector on a Linux host: a virtual environment in /opt/linewarden, config in
# /etc/linewarden (with its contracts and calendars), data in /var/lib/linewarden, and a systemd unit.
# Run as root, from any directory:  install-collector.sh [BUNDLE_DIR | WHEEL | SOURCE_TREE]
set -euo pipefail
. "$(dirname "$0")/install-lib.sh"
install_linewarden collector collector,postgres "${1:-}"
