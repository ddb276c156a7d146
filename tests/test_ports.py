"""The test harness itself: a port handed to one test process is never handed to
another while the first lives (two make test-compat sessions share port slices)."""
import os
import subprocess
import sys
from pathlib import Path

import proctools

HERE = Path(__file__).resolve().parent

HOLDER = """
import sys
sys.path.insert(0, sys.argv[1])
import proctools
print(proctools.free_port(), flush=True)
sys.stdin.read()
"""


def test_a_port_another_live_process_was_given_is_skipped():
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(HERE)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(holder.stdout.readline())
        # free for bind (nothing listens on it yet), but owned by the holder
        assert proctools._bindable(port)
        assert not proctools._own(port)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    # the holder's lock went with it
    assert proctools._own(port)
    # any user can take ports there: the directory is open like /tmp itself
    assert os.stat(proctools._LOCK_DIR).st_mode & 0o7777 == 0o1777
