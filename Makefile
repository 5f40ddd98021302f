# One entry point. `make demo` and `make test` work on a fresh machine (README, first lines).
PYTHON ?= python3
VENV   := .venv
ETL    := $(VENV)/etl/bin
TRAIN  := $(VENV)/train/bin
OUT    ?= out/demo

export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(ETL))/python
export PYSPARK_DRIVER_PYTHON := $(abspath $(ETL))/python
export SPARKPREP_TRAIN_PYTHON := $(abspath $(TRAIN))/python

.PHONY: env jars demo test test-etl test-train test-cluster clean

env: $(VENV)/etl/.installed $(VENV)/train/.installed $(VENV)/s3/.installed jars

# Each environment is rebuilt when its lock file changes; pip's cache serves later builds.
$(VENV)/etl/.installed: requirements/etl.txt pyproject.toml
	rm -rf $(VENV)/etl && $(PYTHON) -m venv $(VENV)/etl
	$(ETL)/pip install -q -r requirements/etl.txt
	$(ETL)/pip install -q --no-deps -e .
	touch $@

$(VENV)/train/.installed: requirements/train.txt pyproject.toml
	rm -rf $(VENV)/train && $(PYTHON) -m venv $(VENV)/train
	$(TRAIN)/pip install -q -r requirements/train.txt
	$(TRAIN)/pip install -q --no-deps -e .
	touch $@

# moto's S3 server for tests/cluster (its botocore pins python-dateutil<3, which the ETL lock cannot take).
$(VENV)/s3/.installed: requirements/s3.txt
	rm -rf $(VENV)/s3 && $(PYTHON) -m venv $(VENV)/s3
	$(VENV)/s3/bin/pip install -q -r requirements/s3.txt
	touch $@

# Delta's JVM jars come from Maven Central through Spark's Ivy, cached under ~/.ivy2.5.2.
# (Not again in `test`'s second make, which the first has just checked: each check starts a JVM.)
jars: $(VENV)/etl/.installed
	$(if $(JARS_CHECKED),@true,$(ETL)/sparkprep jars)

demo: prerequisites-demo env
	$(ETL)/sparkprep generate --config conf/demo.yaml
	$(ETL)/sparkprep prepare --config conf/demo.yaml --set output.path=$(OUT)
	$(TRAIN)/python jobs/train_tiny.py --out $(OUT) --steps 100

# tests/etl keeps both cores busy on its own; tests/train and tests/cluster leave a third to half of
# them idle (subprocesses starting, servers waiting), so those two run side by side, each suite's
# output printed whole when it ends: 122 + 435 s one after the other, 479 s together (bench/RESULTS.md,
# twenty-fifth session). All three side by side saved 20 s more, but ran each command of
# tests/cluster about 3x slower (its longest test 420 s: two spark-submits, each with a 600 s limit).
test: prerequisites-test env test-etl
	@$(MAKE) --no-print-directory -j2 --output-sync=target JARS_CHECKED=1 test-train test-cluster

# What the machine itself must have (Python 3.11, Java 17; for the tests a JDK, Maven, Chromium):
# one line naming what is missing and how to install it, before anything is built.
prerequisites-%:
	@PYTHON=$(PYTHON) scripts/prerequisites.sh $*

# Test JVMs (drivers, executors, the HDFS and standalone servers) live seconds to minutes on tiny
# inputs: C2's compilations were most of their CPU (a demo-sized prepare: 71 CPU s, 42 with C1 only)
# and never paid back. Real runs keep the JVM's defaults. With C1 alone the JVM reserves 48 MB for
# compiled code, which a test worker's session (hundreds of queries' generated classes) filled:
# then the JVM stops compiling and runs the rest interpreted (tests/etl: 968 s, 796 s with 256 MB).
# They also map Spark's classes from a class-data archive (scripts/class_archive.sh) instead of
# loading them: 4 of a CLI prepare's 42 CPU s. -Xlog:cds=off: a JVM of another class path (Maven,
# the HDFS server) cannot use the archive and would say so.
CLASSES := $(VENV)/etl/spark-classes.jsa
test-etl test-train test-cluster: export JDK_JAVA_OPTIONS := -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m \
	-XX:SharedArchiveFile=$(abspath $(CLASSES)) -Xlog:cds=off -Xlog:cds+dynamic=off
test-etl test-train test-cluster: $(CLASSES)

# Dumped by the JDK that runs the tests, from the installed pyspark: rebuilt with the environment.
$(CLASSES): $(VENV)/etl/.installed | jars
	scripts/class_archive.sh $@

# --durations: each run lists its slowest tests, where the suite's time goes (CI's budget).
# Three workers (pytest-xdist), each with its own Spark session; a module's tests stay in one worker
# (--dist loadfile), so its servers and shared outputs are started and made once. One worker keeps
# 2 cores about 65% busy (its driver waits on the JVM, the JVM on Python workers): with two the
# suite took 799 s, with three 623 s and the cores 91-96% busy (bench/RESULTS.md, twentieth session).
test-etl:
	$(ETL)/python -m pytest tests/etl -n 3 --dist loadfile --durations=30

test-train:
	$(TRAIN)/python -m pytest tests/train -n 2 --dist loadfile --durations=10

# Real servers on loopback, started and stopped (by PID) by the tests: standalone Spark, S3 (moto),
# HDFS; each module's servers in a worker of its own (three modules, three workers: with two, one
# worker ran two modules while the other had finished), on free ports.
test-cluster:
	$(ETL)/python -m pytest tests/cluster -n 3 --dist loadfile --durations=12

clean:
	rm -rf out data spark-warehouse
