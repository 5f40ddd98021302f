"""sparkprep: leakage-safe, reproducible training shards from very large datasets.

Importing the package never imports pyspark: the trainer side (`sparkprep.train`) runs in an
environment without Spark.
"""

__version__ = "0.1.0"

#: Columns added to every output row (see DESIGN.md, data contract).
RESERVED_COLUMNS = ("row_id", "fold", "replica", "label_index", "in_train")
HOLDOUT_FOLD = -1
#: Output column: false only for an undersampled original, which training portions skip.
IN_TRAIN = "in_train"
MANIFEST_FORMAT_VERSION = 1
#: manifest.json `status`: a published dataset, or the record of a run that the quality gate
#: stopped (written under `<out>/_blocked/<run_id>/`, never read as a dataset).
PUBLISHED = "published"
BLOCKED = "blocked"
