"""spark-submit entry point: `spark-submit jobs/profile_stats.py --config conf/demo.yaml [options]`
(see `sparkprep profile -h`). Not `jobs/profile.py`: spark-submit puts jobs/ first on sys.path, and
a `profile` module there shadows the standard library's, which pyspark imports via cProfile."""

import sys

from sparkprep.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
