#!/usr/bin/env bash
# Install the linewarden agent on a Linux host: a virtual environment in /opt/linewarden, config in
# /etc/linewarden (with the calendars it names), data in /var/lib/linewarden, and a systemd unit.
# Run as root, from any directory:  install-agent.sh [BUNDLE_DIR | WHEEL | SOURCE_TREE]
# (plant networks are closed: bring an offline bundle, see packaging/bundle/build.sh).
set -euo pipefail
. "$(dirname "$0")/install-lib.sh"
install_linewarden agent "" "${1:-}"
