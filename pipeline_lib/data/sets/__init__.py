"""The datasets, one module each family, each registering its sources in `DATASETS` by name; every
module here is imported when the package is, so a new one is found without a list."""
from pipeline_lib.registry import import_submodules

import_submodules(__name__)
