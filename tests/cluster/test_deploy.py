"""deploy/ files that cannot run here (no Docker engine, no Kubernetes, no YARN, no Airflow) are held
to what can: they parse, name paths that exist, use the versions the tested code uses, and submit
the same job with the same arguments as the tested wrapper (conftest.PREPARE_JOB).
"""

import ast
import os
import re
import subprocess
from pathlib import Path

import pyspark
import pytest
import yaml

from conftest import PREPARE_JOB, ROOT

from sparkprep.io.session import DELTA_PACKAGE, hadoop_aws_package

DEPLOY = ROOT / "deploy"
IMAGE_WORKDIR = "/opt/sparkprep"


def _dockerfile() -> tuple[dict, list[tuple[str, str]]]:
    """(ARG defaults, [(instruction, rest)]) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    steps = [tuple(line.split(None, 1)) for line in lines]
    args = dict(rest.split("=", 1) for op, rest in steps if op == "ARG" and "=" in rest)
    return args, steps


def test_the_image_uses_the_tested_versions_and_copies_paths_that_exist():
    args, steps = _dockerfile()
    assert args["SPARK_VERSION"] == pyspark.__version__
    assert args["DELTA_PACKAGE"] == DELTA_PACKAGE
    assert args["HADOOP_AWS_PACKAGE"] == hadoop_aws_package()
    copies = [rest.split()[0] for op, rest in steps if op == "COPY"]
    assert copies, "the image copies nothing"
    for source in copies:
        if source != "dist/":  # built by `python -m build --wheel` right before `docker build`
            assert (ROOT / source).exists(), source
    assert ("WORKDIR", IMAGE_WORKDIR) in steps
    assert {"jobs/", "conf/"} <= set(copies)


def test_the_spark_application_submits_the_tested_job():
    app = yaml.safe_load((DEPLOY / "k8s/sparkapplication.yaml").read_text())
    assert (app["apiVersion"], app["kind"]) == ("sparkoperator.k8s.io/v1beta2", "SparkApplication")
    spec = app["spec"]
    assert spec["type"] == "Python" and spec["sparkVersion"] == pyspark.__version__
    assert spec["mainApplicationFile"] == f"local://{IMAGE_WORKDIR}/{PREPARE_JOB[0]}"
    assert spec["arguments"] == PREPARE_JOB[1:]
    assert (ROOT / PREPARE_JOB[0]).exists() and (ROOT / PREPARE_JOB[2]).exists()
    for role in ("driver", "executor"):
        assert spec[role]["cores"] >= 1 and spec[role]["memory"]
        assert spec[role]["envFrom"][0]["secretRef"]["name"]  # credentials from a Secret
    assert "SECRET_ACCESS_KEY" not in (DEPLOY / "k8s/sparkapplication.yaml").read_text()


def test_the_cronjob_recreates_that_spark_application_nightly():
    cron = yaml.safe_load((DEPLOY / "k8s/cronjob.yaml").read_text())
    app = yaml.safe_load((DEPLOY / "k8s/sparkapplication.yaml").read_text())
    assert (cron["apiVersion"], cron["kind"]) == ("batch/v1", "CronJob")
    assert len(cron["spec"]["schedule"].split()) == 5
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # two runs must not write one output
    script = " ".join(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"])
    assert f"sparkapplication {app['metadata']['name']} -n {app['metadata']['namespace']}" in script


def test_the_airflow_dag_submits_the_tested_job():
    tree = ast.parse((DEPLOY / "airflow/sparkprep_dag.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "SparkSubmitOperator"]
    assert len(calls) == 1
    kwargs = {kw.arg: kw.value for kw in calls[0].keywords}
    assert ast.unparse(kwargs["application"]).rstrip("'\"").endswith(f"/{PREPARE_JOB[0]}")
    assert ast.literal_eval(kwargs["application_args"]) == PREPARE_JOB[1:]
    assert ast.literal_eval(kwargs["packages"]) == DELTA_PACKAGE
    assert ast.unparse(kwargs["files"]).rstrip("'\"").endswith(f"/{PREPARE_JOB[2]}")


@pytest.fixture
def recording_spark_home(tmp_path) -> Path:
    """A SPARK_HOME whose bin/spark-submit writes its argv, one per line, instead of submitting."""
    bin_dir = tmp_path / "spark/bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "spark-submit"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    script.chmod(0o755)
    return tmp_path


def test_the_yarn_example_goes_through_the_wrapper_with_the_tested_job(recording_spark_home):
    env = {**os.environ, "SPARK_HOME": str(recording_spark_home / "spark"), "HADOOP_CONF_DIR": "/etc/hadoop/conf"}
    subprocess.run([str(DEPLOY / "yarn/submit.sh"), "--set", "split.k=3"], check=True, env=env, cwd=ROOT,
                   timeout=120)
    argv = (recording_spark_home / "argv").read_text().splitlines()
    assert argv[argv.index("--master") + 1] == "yarn"
    assert argv[argv.index("--packages") + 1] == DELTA_PACKAGE
    assert argv[argv.index("--files") + 1] == PREPARE_JOB[2]
    assert argv[argv.index("--py-files") + 1].endswith("sparkprep.zip")
    job = argv.index(str(ROOT / PREPARE_JOB[0]))
    assert argv[job + 1:] == [*PREPARE_JOB[1:], "--set", "split.k=3"]


def test_the_wrapper_cleans_finished_shuffles_and_a_callers_conf_wins(recording_spark_home):
    """Spark's cleaner runs on the driver's GC, which a small driver heap may hardly need: the
    wrapper asks for it every 2 minutes, as session.py does, unless the caller says otherwise."""
    env = {**os.environ, "SPARK_HOME": str(recording_spark_home / "spark")}
    wrapper = str(DEPLOY / "spark-submit.sh")
    subprocess.run([wrapper, *PREPARE_JOB], check=True, env=env, cwd=ROOT, timeout=120)
    argv = (recording_spark_home / "argv").read_text().splitlines()
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert "spark.cleaner.periodicGC.interval=2min" in confs
    subprocess.run([wrapper, "--conf", "spark.cleaner.periodicGC.interval=30s", *PREPARE_JOB], check=True, env=env,
                   cwd=ROOT, timeout=120)
    argv = (recording_spark_home / "argv").read_text().splitlines()
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    # spark-submit keeps the last of a repeated --conf.
    assert [c for c in confs if c.startswith("spark.cleaner.periodicGC.interval=")][-1] == \
        "spark.cleaner.periodicGC.interval=30s"
