"""Sources and sinks at the edges of the pipeline (Hadoop FileSystem: file://, hdfs://, s3a://)."""
