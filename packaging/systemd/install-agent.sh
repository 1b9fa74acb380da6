#!/usr/bin/env bash
# Install the linewarden agent on a Linux host: a virtual environment in /opt/linewarden, config in
# /etc/linewarden, data in /var/lib/linewarden, and a systemd unit. Run as root from an unpacked source tree
# or with a wheel file as the first argument (plant networks are closed: bring the wheels with you).
set -euo pipefail
src=${1:-.}
id linewarden >/dev/null 2>&1 || useradd --system --home /var/lib/linewarden --shell /usr/sbin/nologin linewarden
install -d -o linewarden -g linewarden -m 0700 /var/lib/linewarden
install -d -m 0755 /etc/linewarden
python3 -m venv /opt/linewarden/venv
/opt/linewarden/venv/bin/pip install --quiet "$src"
[ -f /etc/linewarden/agent.toml ] || install -m 0640 -g linewarden config/agent.toml /etc/linewarden/agent.toml
install -m 0644 "$(dirname "$0")/linewarden-agent.service" /etc/systemd/system/linewarden-agent.service
systemctl daemon-reload
echo "edit /etc/linewarden/agent.toml, then: systemctl enable --now linewarden-agent"
