"""Billiards data engine: physics-grounded synthetic clips with exact questions, answers and commentary.

Pipeline per clip (:func:`.clip.make_clip`): sample a layout and a shot (:mod:`.shots`, racks and
tables in :mod:`.tables`), simulate it with pooltool (:mod:`.simulate`), judge it with pooltool's
rule sets (:mod:`.rules`), summarise the ground truth (:mod:`.truth`), ask questions
(:mod:`.qa`) and write a commentary caption (:mod:`.captions`), render frames with numpy
(:mod:`.camera`, :mod:`.render`) and encode H.264 (:mod:`.video`). :mod:`.dataset` and
:mod:`.runner` write whole datasets; :mod:`.parse` turns answer text back into facts (its docstring
is the facts schema the evaluation relies on); :mod:`.contact_sheet` draws clips with their events.

pooltool's physics kernels are numba functions compiled on first use and cached on disk. Importing this
package creates nothing: it points ``NUMBA_CACHE_DIR`` at ``$XDG_CACHE_HOME/hilight/numba`` (default
``~/.cache/hilight/numba``) unless it is already set, so every process reuses the compiled code. The modules
that import pooltool bring its own side effects: pooltool creates ``~/.config/pooltool``, and numba creates
the cache folders of pooltool's kernels when pooltool defines them.
"""

import os as _os

if "NUMBA_CACHE_DIR" not in _os.environ:
    _base = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
    _os.environ["NUMBA_CACHE_DIR"] = _os.path.join(_base, "hilight", "numba")
