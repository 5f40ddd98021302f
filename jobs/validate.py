"""spark-submit entry point: `spark-submit jobs/validate.py --config conf/demo.yaml [options]` (see `sparkprep validate -h`)."""

import sys

from sparkprep.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
