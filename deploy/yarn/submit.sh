#!/usr/bin/env bash
# The prepare job on YARN, through the same wrapper as every other master (deploy/spark-submit.sh).
#   HADOOP_CONF_DIR=/etc/hadoop/conf deploy/yarn/submit.sh [--set k=v ...]
# Client deploy mode: the driver runs here and reads conf/ locally; executors get the package zip
# (--py-files) and the config (--files) from YARN's distributed cache. Input and output are
# hdfs:// or s3a:// URIs set in the config.
set -euo pipefail
: "${HADOOP_CONF_DIR:?set HADOOP_CONF_DIR to the Hadoop client configuration of the cluster}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "$root/deploy/spark-submit.sh" --master yarn \
  --conf spark.submit.deployMode=client \
  --conf spark.executor.instances=4 --conf spark.executor.cores=2 --conf spark.executor.memory=4g \
  --conf spark.yarn.maxAppAttempts=2 \
  jobs/prepare.py --config conf/demo.yaml "$@"
