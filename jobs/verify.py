"""spark-submit entry point: `spark-submit jobs/verify.py OUT [--config conf/demo.yaml]`."""

import sys

from sparkprep.cli import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))
