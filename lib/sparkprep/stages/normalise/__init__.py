"""Normalisation: fitting the transforms (fit), applying them in Spark, and the Parquet-file fitting path (parquet)."""
