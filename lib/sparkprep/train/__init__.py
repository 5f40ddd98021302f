"""The trainer side: read a sparkprep output into PyTorch without Spark (it never imports pyspark).

>>> from sparkprep.train import make_loader
>>> with make_loader("/data/prepared", fold=0, split="val", shuffle=False) as loader:
...     batch = next(iter(loader))

Two backends with one API, both DDP-exact: "arrow" (default; pyarrow) and "petastorm".
"""

from sparkprep.train.files import DatasetFiles
from sparkprep.train.loader import feature_columns, make_loader
from sparkprep.train.manifest import load_manifest, load_transform
from sparkprep.train.backends.petastorm import PetastormOptions
from sparkprep.train.serving import TransformModule

__all__ = ["DatasetFiles", "PetastormOptions", "TransformModule", "feature_columns", "load_manifest",
           "load_transform", "make_loader"]
