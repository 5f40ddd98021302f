#!/usr/bin/env bash
# Dump a JDK class-data archive (AppCDS) of the classes a Spark driver loads from pyspark's jars:
#   scripts/class_archive.sh ARCHIVE
# `make test` starts about a hundred JVMs (test sessions, CLI runs, spark-submit, cluster daemons),
# and each spent ~4 CPU s loading and verifying those classes; a JVM given the archive
# (-XX:SharedArchiveFile) maps them instead. One small run loads them: a session that resolves
# Delta through Ivy, generates 3,000 demo rows and prepares them, as the tests do. The prepare
# also leaves numba's compiled kernels in lib/'s __pycache__ (every kernel prepare calls), which
# a fresh checkout's test workers otherwise each compile on first use (7 s for near-dup's alone).
# The archive holds only
# classes of the class path it was dumped with (pyspark's jars): any other JVM (Maven, the HDFS
# server) finds it does not match and runs as without it.
set -euo pipefail
archive="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYSPARK_PYTHON:-$root/.venv/etl/bin/python}"
spark_home="$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
delta="$("$python" -c 'from sparkprep.io.session import DELTA_PACKAGE; print(DELTA_PACKAGE)')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/warm.py" <<EOF
import sys
from sparkprep.cli import main
demo = ["--config", "$root/conf/demo.yaml", "--set", "generate.rows=3000", "--set", "generate.path=$work/raw"]
status = main(["generate", *demo])
sys.exit(status or main(["prepare", *demo, "--set", "input.paths=[$work/raw]", "--set", "output.path=$work/out"]))
EOF
# The dump option goes to the driver's JVM alone: spark-submit's launcher JVM would dump its own
# few classes at its exit too.
if ! env -u JDK_JAVA_OPTIONS PYSPARK_PYTHON="$python" PYSPARK_DRIVER_PYTHON="$python" SPARK_LOCAL_IP=127.0.0.1 \
    "$spark_home/bin/spark-submit" --master 'local[2]' --packages "$delta" --conf spark.ui.enabled=false \
    --driver-java-options "-XX:ArchiveClassesAtExit=$work/classes.jsa -Xlog:cds=off -Xlog:cds+dynamic=off" \
    "$work/warm.py" >"$work/log" 2>&1; then
  tail -40 "$work/log" >&2
  exit 1
fi
mv "$work/classes.jsa" "$archive"
