"""Airflow DAG: nightly prepare through SparkSubmitOperator (apache-airflow-providers-apache-spark).

The operator runs spark-submit with the same application and arguments as deploy/spark-submit.sh;
the `spark_default` connection names the master (yarn, spark://..., k8s://...). Drop this file into
the DAGs folder of an Airflow that has the Spark provider and this repository at SPARKPREP_HOME.
"""

import os
from datetime import datetime

from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

HOME = os.environ.get("SPARKPREP_HOME", "/opt/sparkprep")

with DAG(dag_id="sparkprep_nightly", schedule="0 2 * * *", start_date=datetime(2026, 1, 1),
         catchup=False, max_active_runs=1, tags=["sparkprep"]) as dag:
    SparkSubmitOperator(
        task_id="prepare",
        conn_id="spark_default",
        application=f"{HOME}/jobs/prepare.py",
        application_args=["--config", "conf/demo.yaml"],
        py_files=f"{HOME}/dist/sparkprep.zip",
        files=f"{HOME}/conf/demo.yaml",
        packages="io.delta:delta-spark_4.2_2.13:4.4.0",
        name="sparkprep-prepare",
    )
