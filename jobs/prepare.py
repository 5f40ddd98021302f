"""spark-submit entry point: `spark-submit jobs/prepare.py --config conf/demo.yaml [--set k=v ...]`."""

import sys

from sparkprep.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
