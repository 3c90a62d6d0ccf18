"""Full collections freeze their survivors (in a process of its own: freezing is global)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from rotator.sandbox.heap import keep_collections_short

keep_collections_short()
frozen = gc.get_freeze_count()
assert frozen > 0 and gc.get_count()[2] == 0

kept = [[i] for i in range(5000)]
gc.collect(1)  # a young collection freezes nothing
assert gc.get_freeze_count() == frozen
gc.collect()  # a full one freezes its survivors
assert gc.get_freeze_count() >= frozen + 5000, (gc.get_freeze_count(), frozen)

loop = []
loop.append(loop)
del loop
assert gc.collect() == 1  # garbage made after a freeze is still collected
print("ok")
"""


def test_full_collections_freeze_their_survivors():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
