#!/usr/bin/env bash
# localstack-host.sh - install and run the LocalStack community emulator in "host mode"
# (no Docker) on 127.0.0.1:4566.
#
# Usage: localstack-host.sh [install|start|stop|status|restart]   (default: start)
#   install  create the venv and pip-install localstack-core with known-good pins
#   start    install if needed, start in background, wait for /_localstack/health
#   stop     stop the process recorded in the pid file (SIGTERM, then SIGKILL)
#   status   print health JSON, exit non-zero if not answering
#
# Settings (environment):
#   LS_HOME      state dir: venv/, fs/, localstack.pid, localstack.log  (default ~/.localstack-host)
#   LS_PYTHON    python 3.13 interpreter (default: auto-detect python3.13 / pyenv 3.13.x)
#   LS_PORT      gateway port (default 4566)
#   LS_SERVER    gateway server: hypercorn (binds 127.0.0.1 only) or twisted
#                (LocalStack's default, ignores the host and binds 0.0.0.0)  (default hypercorn)
#   LS_WAIT      seconds to wait for health on start (default 120)
set -euo pipefail

LS_VERSION="2026.3.0"
LS_HOME="${LS_HOME:-$HOME/.localstack-host}"
LS_PORT="${LS_PORT:-4566}"
LS_SERVER="${LS_SERVER:-hypercorn}"
LS_WAIT="${LS_WAIT:-120}"
VENV="$LS_HOME/venv"
PIDFILE="$LS_HOME/localstack.pid"
LOGFILE="$LS_HOME/localstack.log"
HEALTH_URL="http://127.0.0.1:${LS_PORT}/_localstack/health"

# Known-good pins for localstack-core 2026.3.0 (each fixes an import or start-up failure of that release).
PIP_PKGS=(
  "localstack-core[runtime]==${LS_VERSION}"
  "cbor2<6"            # 6.x dropped cbor2._decoder, imported by localstack.aws.protocol.parser
  "pyopenssl<25"       # 25.x removed X509.add_extensions, used by localstack.utils.crypto
  "cryptography<45"    # pyopenssl 24.x requires cryptography<45
  "joserfc<1.1"        # joserfc 1.8 needs cryptography>=45 (pip resolves it anyway when all pins go in one install)
  "service_identity"   # twisted.internet.ssl imports it; not declared by localstack-core
)

# Entry point = localstack.runtime.main plus one fix: HypercornRuntimeServer.shutdown() calls loop.stop()
# from another thread without waking the selector, so SIGTERM sometimes leaves the process idling forever.
LS_MAIN_PY='
import localstack.runtime.server.hypercorn as h
_orig_shutdown = h.HypercornRuntimeServer.shutdown
def _shutdown(self):
    _orig_shutdown(self)
    try:
        self.loop.call_soon_threadsafe(lambda: None)  # wake the event loop so it sees the stop flag
    except RuntimeError:
        pass
h.HypercornRuntimeServer.shutdown = _shutdown
import localstack.runtime.main
localstack.runtime.main.main()
'

log() { echo "[localstack-host] $*" >&2; }

find_python() {
  local c
  if [[ -n "${LS_PYTHON:-}" ]]; then echo "$LS_PYTHON"; return 0; fi
  for c in python3.13 \
           "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13 \
           /usr/local/bin/python3.13 /usr/bin/python3.13; do
    if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
      echo "$c"; return 0
    fi
  done
  log "no Python 3.13 found; set LS_PYTHON=/path/to/python3.13"; return 1
}

do_install() {
  local marker="$VENV/.localstack-host-installed"
  if [[ -f "$marker" && "$(cat "$marker")" == "${PIP_PKGS[*]}" ]]; then return 0; fi
  local py; py="$(find_python)"
  log "creating venv $VENV with $py ($("$py" --version))"
  mkdir -p "$LS_HOME"
  "$py" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "${PIP_PKGS[@]}"
  # smoke test: the imports that broke with unpinned deps
  "$VENV/bin/python" -c 'import localstack.aws.components, localstack.utils.crypto, service_identity, twisted.internet.ssl'
  echo "${PIP_PKGS[*]}" >"$marker"
  log "installed: $("$VENV/bin/python" -m pip freeze 2>/dev/null | grep -i '^localstack-core==')"
}

# running = pid file names a live process that is our localstack runtime (guards against pid reuse)
is_running() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'localstack.runtime.main'
}
healthy() { curl -fsS -m 2 "$HEALTH_URL" >/dev/null 2>&1; }

do_start() {
  if is_running; then log "already running (pid $(cat "$PIDFILE"))"; return 0; fi
  # hypercorn does not report a failed bind (it logs "Ready." and serves nothing), so check first
  if (exec 3<>"/dev/tcp/127.0.0.1/${LS_PORT}") 2>/dev/null; then
    log "127.0.0.1:${LS_PORT} is already in use by another process"; return 1
  fi
  do_install
  mkdir -p "$LS_HOME/fs"
  local t0 pid
  t0=$(date +%s.%N)
  rm -f "$PIDFILE"
  # setsid: own session, so it outlives the calling shell; the child writes its own pid, then execs python.
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" env OVERRIDE_IN_DOCKER=0 \
      FILESYSTEM_ROOT="$LS_HOME/fs" \
      GATEWAY_LISTEN="127.0.0.1:${LS_PORT}" \
      GATEWAY_SERVER="$LS_SERVER" \
      DISABLE_EVENTS=1 \
      SKIP_SSL_CERT_DOWNLOAD=1 \
      DNS_ADDRESS=0 \
      PERSISTENCE=0 \
      "$VENV/bin/python" -c "$LS_MAIN_PY" >"$LOGFILE" 2>&1 </dev/null &
  for _ in $(seq 1 100); do [[ -s "$PIDFILE" ]] && break; sleep 0.05; done
  pid="$(cat "$PIDFILE")"
  local deadline=$(( $(date +%s) + LS_WAIT ))
  until healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "LocalStack exited during startup; last log lines:"; tail -n 30 "$LOGFILE" >&2
      rm -f "$PIDFILE"; return 1
    fi
    if (( $(date +%s) >= deadline )); then
      log "not healthy after ${LS_WAIT}s (log: $LOGFILE)"; do_stop; return 1
    fi
    sleep 0.25
  done
  log "ready on $HEALTH_URL (pid $pid, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s)"
}

do_stop() {
  if ! is_running; then log "not running"; rm -f "$PIDFILE"; return 0; fi
  local pid i; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid"
  for i in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done  # normally 2-5 s
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM, sending SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$PIDFILE"
  log "stopped (pid $pid)"
}

case "${1:-start}" in
  install) do_install ;;
  start)   do_start ;;
  stop)    do_stop ;;
  restart) do_stop; do_start ;;
  status)  curl -fsS -m 2 "$HEALTH_URL" && echo ;;
  *) echo "usage: $0 [install|start|stop|status|restart]" >&2; exit 2 ;;
esac
