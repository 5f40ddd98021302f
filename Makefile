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

.PHONY: env jars demo test test-etl test-train clean

env: $(VENV)/etl/.installed $(VENV)/train/.installed jars

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

# Delta's JVM jars come from Maven Central through Spark's Ivy, cached under ~/.ivy2.5.2.
jars: $(VENV)/etl/.installed
	$(ETL)/sparkprep jars

demo: env
	$(ETL)/sparkprep generate --config conf/demo.yaml
	$(ETL)/sparkprep prepare --config conf/demo.yaml --set output.path=$(OUT)
	$(TRAIN)/python jobs/train_tiny.py --out $(OUT) --steps 100

test: env test-etl test-train

test-etl:
	$(ETL)/python -m pytest tests/etl

test-train:
	$(TRAIN)/python -m pytest tests/train

clean:
	rm -rf out data spark-warehouse
