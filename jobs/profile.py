"""spark-submit entry point: `spark-submit jobs/profile.py --config conf/demo.yaml [options]` (see `sparkprep profile -h`)."""

import sys

from sparkprep.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
