#!/usr/bin/env bash
# Dump a JDK class-data archive (AppCDS) of the classes a Spark driver loads from pyspark's jars:
#   scripts/class_archive.sh ARCHIVE
# `make test` starts about a hundred JVMs (test sessions, CLI runs, spark-submit, cluster daemons),
# and each spent ~4 CPU s loading and verifying those classes; a JVM given the archive
# (-XX:SharedArchiveFile) maps them instead. One small job loads them: a session that resolves
# Delta through Ivy and writes a few rows, as every test run does. The archive holds only
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

# The dump option goes to the driver's JVM alone: spark-submit's launcher JVM would dump its own
# few classes at its exit too.
if ! env -u JDK_JAVA_OPTIONS PYSPARK_PYTHON="$python" PYSPARK_DRIVER_PYTHON="$python" SPARK_LOCAL_IP=127.0.0.1 \
    "$spark_home/bin/spark-submit" --master 'local[2]' --packages "$delta" --conf spark.ui.enabled=false \
    --driver-java-options "-XX:ArchiveClassesAtExit=$work/classes.jsa -Xlog:cds=off -Xlog:cds+dynamic=off" \
    "$root/jobs/generate.py" --config "$root/conf/demo.yaml" --set generate.rows=200 \
    --set "generate.path=$work/raw" >"$work/log" 2>&1; then
  tail -40 "$work/log" >&2
  exit 1
fi
mv "$work/classes.jsa" "$archive"
