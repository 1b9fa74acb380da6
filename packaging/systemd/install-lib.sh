# Shared by install-agent.sh and install-collector.sh (sourced, not run).
# install_linewarden ROLE EXTRAS [SOURCE]
#   SOURCE: an offline bundle directory (packaging/bundle/build.sh), a wheel file, or a source tree;
#   default: the source tree this script lives in. Works from any directory.
#   LINEWARDEN_INSTALL_ROOT=DIR installs below DIR instead of / (no user, no systemctl): for tests and images.
set -euo pipefail

install_linewarden() {
  local role=$1 extras=$2 src=${3:-}
  local here tree
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  tree=$(cd "$here/../.." && pwd)    # source tree, or the bundle (it has the same config/ and packaging/)
  [ -n "$src" ] || src=$tree
  [ -e "$src" ] || { echo "no such source: $src" >&2; exit 2; }
  src=$(cd "$(dirname "$src")" && pwd)/$(basename "$src")
  local R=${LINEWARDEN_INSTALL_ROOT:-} owner=(-g linewarden)
  local etc=$R/etc/linewarden venv=$R/opt/linewarden/venv

  if [ -z "$R" ]; then
    id linewarden >/dev/null 2>&1 || useradd --system --home /var/lib/linewarden --shell /usr/sbin/nologin linewarden
    install -d -o linewarden -g linewarden -m 0700 /var/lib/linewarden
  else
    owner=()
    install -d -m 0700 "$R/var/lib/linewarden"
  fi
  install -d -m 0755 "$etc" "$R/etc/systemd/system"

  if [ -x "$src/install.sh" ] && [ -d "$src/wheels" ]; then
    "$src/install.sh" --prefix "$venv" ${extras:+--extras "$extras"}
    tree=$src
  else
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$src${extras:+[$extras]}"   # a wheel file or a source tree
  fi

  # The example config and every file it names (relative to it), without overwriting what is there.
  if [ ! -f "$etc/$role.toml" ]; then
    install -m 0640 "${owner[@]}" "$tree/config/$role.toml" "$etc/$role.toml"
  fi
  local dir f
  for dir in calendars $([ "$role" = collector ] && echo contracts); do
    install -d -m 0755 "$etc/$dir"
    for f in "$tree/config/$dir"/*.toml; do
      [ -e "$etc/$dir/$(basename "$f")" ] || install -m 0640 "${owner[@]}" "$f" "$etc/$dir/"
    done
  done
  install -m 0644 "$tree/packaging/systemd/linewarden-$role.service" "$R/etc/systemd/system/linewarden-$role.service"
  if [ -z "$R" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  # the unit's ExecStartPre runs the same check: it passes on the copied example
  "$venv/bin/linewarden" config check "$etc/$role.toml" || { echo "fix $etc/$role.toml, then start" >&2; return 1; }
  echo "edit /etc/linewarden/$role.toml, then: systemctl enable --now linewarden-$role"
}
