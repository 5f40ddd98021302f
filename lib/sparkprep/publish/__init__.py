"""What a run leaves for its readers: the manifest (the only writer of its keys), the report, and the verification before publishing."""
