"""spark-submit entry point: `spark-submit jobs/generate.py --config conf/demo.yaml [--set k=v ...]`."""

import sys

from sparkprep.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
