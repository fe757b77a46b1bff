"""Code shared by the scripts under ``train/`` (datasets, collator, feature cache, billiards engine).

The repo root holds the model files (``configuration_hilight.py``, ``modeling_hilight.py``,
``processing_hilight.py``). ``trust_remote_code`` downloads them on their own, so they import each
other relatively and the root has no ``__init__.py``. Importing this package registers the root as
the package ``hilight``, so training code and tests write ``from hilight.modeling_hilight import ...``
and run exactly the files a Hub user gets.
"""

import sys
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

if "hilight" not in sys.modules:
    _root_package = types.ModuleType("hilight", "The HiLight model files at the repo root.")
    _root_package.__path__ = [str(REPO_ROOT)]
    sys.modules["hilight"] = _root_package
