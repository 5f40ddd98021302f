#!/usr/bin/env bash
# A Spark standalone cluster on loopback: one master and N workers of 1 core each.
#   deploy/standalone.sh start  [STATE_DIR]   prints the master URL (spark://127.0.0.1:PORT)
#   deploy/standalone.sh worker [STATE_DIR]   adds one more worker to a running cluster
#   deploy/standalone.sh status [STATE_DIR]   exit 0 when the master and every worker are alive
#   deploy/standalone.sh stop   [STATE_DIR]   stops what `start`/`worker` started, by PID only
# pip's pyspark ships no sbin/start-*.sh, so the daemons are started with bin/spark-class.
# Settings (environment): SPARK_MASTER_PORT, SPARK_MASTER_WEBUI_PORT (0 = any free port, default),
# SPARK_WORKERS (2), SPARK_WORKER_MEMORY (1g). STATE_DIR (default out/standalone) holds the PID
# files, logs, the master URL and the workers' scratch dirs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:?usage: $0 start|worker|status|stop [STATE_DIR]}"
state="$(mkdir -p "${2:-$root/out/standalone}" && cd "${2:-$root/out/standalone}" && pwd)"
python="${PYSPARK_PYTHON:-$root/.venv/etl/bin/python}"
export SPARK_HOME="${SPARK_HOME:-$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$python"

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Start a daemon in the background, record its PID, wait until its log says it is up.
launch() {
  local name="$1" ready="$2"; shift 2
  nohup "$SPARK_HOME/bin/spark-class" "$@" >"$state/$name.log" 2>&1 &
  echo $! >"$state/$name.pid"
  for _ in $(seq 120); do
    grep -q "$ready" "$state/$name.log" && return 0
    alive "$state/$name.pid" || { tail -20 "$state/$name.log" >&2; return 1; }
    sleep 0.5
  done
  echo "$name did not start within 60 s; see $state/$name.log" >&2
  return 1
}

add_worker() {
  local n=1
  while [[ -f "$state/worker-$n.pid" ]]; do n=$((n + 1)); done
  mkdir -p "$state/work-$n"
  launch "worker-$n" "Successfully registered with master" org.apache.spark.deploy.worker.Worker \
    --host 127.0.0.1 --port "$(free_port)" --webui-port "$(free_port)" --cores 1 \
    --memory "${SPARK_WORKER_MEMORY:-1g}" --work-dir "$state/work-$n" "$(cat "$state/master.url")"
}

case "$cmd" in
  start)
    if alive "$state/master.pid"; then echo "already running: $(cat "$state/master.url")" >&2; exit 1; fi
    rm -f "$state"/*.pid
    port="${SPARK_MASTER_PORT:-0}"; [[ "$port" == 0 ]] && port="$(free_port)"
    ui="${SPARK_MASTER_WEBUI_PORT:-0}"; [[ "$ui" == 0 ]] && ui="$(free_port)"
    echo "spark://127.0.0.1:$port" >"$state/master.url"
    launch master "I have been elected leader" org.apache.spark.deploy.master.Master \
      --host 127.0.0.1 --port "$port" --webui-port "$ui"
    for _ in $(seq "${SPARK_WORKERS:-2}"); do add_worker; done
    cat "$state/master.url"
    ;;
  worker) add_worker ;;
  status)
    ok=0
    for pid in "$state"/*.pid; do
      [[ -f "$pid" ]] || { echo "not running" >&2; exit 1; }
      if alive "$pid"; then echo "$(basename "$pid" .pid) up (pid $(cat "$pid"))"
      else echo "$(basename "$pid" .pid) down"; ok=1; fi
    done
    exit "$ok"
    ;;
  stop)
    # Workers first, so the master does not log them as lost; SIGTERM, then SIGKILL after 10 s.
    for pid in $(ls "$state"/worker-*.pid 2>/dev/null) "$state/master.pid"; do
      [[ -f "$pid" ]] || continue
      p="$(cat "$pid")"
      kill "$p" 2>/dev/null || true
      for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$p" 2>/dev/null || true
      rm -f "$pid"
    done
    ;;
  *) echo "usage: $0 start|worker|status|stop [STATE_DIR]" >&2; exit 2 ;;
esac
