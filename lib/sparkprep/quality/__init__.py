"""Data quality: profiles (Spark and Parquet-file paths), schema rules, validation, drift, and the gate that can stop a run."""
