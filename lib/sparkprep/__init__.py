"""sparkprep: leakage-safe, reproducible training shards from very large datasets.

Importing the package never imports pyspark: the trainer side (`sparkprep.train`) runs in an
environment without Spark.
"""

__version__ = "0.1.0"
