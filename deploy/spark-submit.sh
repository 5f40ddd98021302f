#!/usr/bin/env bash
# Submit a sparkprep job to any Spark master with the package shipped alongside it.
#   deploy/spark-submit.sh [--master URL] [--conf K=V ...] [--packages G:A:V,...] jobs/prepare.py --config conf/demo.yaml [--set k=v ...]
# The package travels as a zip (--py-files), the config as a file (--files), Delta's jars as
# --packages (resolved by Ivy from Maven Central, cached in ~/.ivy2.5.2), plus any --packages given
# (for s3a://: `--packages "$(python -c 'from sparkprep.io.session import hadoop_aws_package as p; print(p())')"`).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
master="${SPARK_MASTER:-local[*]}"
submit_conf=()
packages=""
while [[ "${1:-}" == --master || "${1:-}" == --conf || "${1:-}" == --packages ]]; do
  case "$1" in
    --master) master="$2" ;;
    --conf) submit_conf+=(--conf "$2") ;;
    --packages) packages="$2" ;;
  esac
  shift 2
done
job="$1"; shift

python="${PYSPARK_PYTHON:-$root/.venv/etl/bin/python}"
# pip's pyspark is a full Spark distribution; use it unless the cluster provides SPARK_HOME.
export SPARK_HOME="${SPARK_HOME:-$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
spark_submit="$SPARK_HOME/bin/spark-submit"
delta="$("$python" -c 'from sparkprep.io.session import DELTA_PACKAGE; print(DELTA_PACKAGE)')"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
(cd "$root/lib" && "$python" -m zipfile -c "$build/sparkprep.zip" sparkprep)

config=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ "${args[$i]}" == "--config" ]] && config="${args[$((i + 1))]}"
done

export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
# Not `exec`: the EXIT trap must still remove the zip. A TERM or INT sent to this script is passed
# on to spark-submit, and its exit status is returned. Finished shuffles leave the disk within 2
# minutes, as when sparkprep starts Spark itself (io/session.py); a --conf given to this script wins.
"$spark_submit" \
  --master "$master" \
  --name "sparkprep-$(basename "$job" .py)" \
  --packages "$delta${packages:+,$packages}" \
  --py-files "$build/sparkprep.zip" \
  ${config:+--files "$config"} \
  --conf "spark.pyspark.python=$python" \
  --conf "spark.pyspark.driver.python=$python" \
  --conf "spark.cleaner.periodicGC.interval=2min" \
  --driver-java-options "-Dlog4j2.configurationFile=$root/lib/sparkprep/log4j2.properties" \
  ${submit_conf[@]+"${submit_conf[@]}"} \
  "$root/$job" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
status=0
wait "$child" || status=$?
while kill -0 "$child" 2>/dev/null; do  # a trapped signal ends `wait` early
  wait "$child" || status=$?
done
exit "$status"
