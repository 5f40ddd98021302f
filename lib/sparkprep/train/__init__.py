"""The trainer side: read a sparkprep output into PyTorch without Spark (it never imports pyspark).

>>> from sparkprep.train import Sampling, make_loader
>>> with make_loader("/data/prepared", fold=0, split="val", sampling=Sampling(shuffle=False)) as loader:
...     batch = next(iter(loader))

Two backends with one API, both DDP-exact: "arrow" (default; pyarrow) and "petastorm"
(`backend=PetastormOptions(...)` picks it with options).
"""

from sparkprep.train.backends.petastorm import PetastormOptions
from sparkprep.train.files import DatasetFiles
from sparkprep.train.loader import feature_columns, make_loader
from sparkprep.train.manifest import load_manifest, load_transform
from sparkprep.train.serving import TransformModule
from sparkprep.train.sharding import Sampling

__all__ = ["DatasetFiles", "PetastormOptions", "Sampling", "TransformModule", "feature_columns", "load_manifest",
           "load_transform", "make_loader"]
