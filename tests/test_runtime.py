"""mctrack.runtime: deferred imports (tracking jobs skip boxmot's unused torch import) and thread limits."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import REPO

TRACK = textwrap.dedent('''
    import json, sys
    import numpy as np, pandas as pd
    from mctrack.runtime import deferred_import
    from mctrack.track2d import TrackerConfig, Tracker2D
    rng = np.random.default_rng(0)
    f = np.repeat(np.arange(60), 3)
    x = np.tile([10.0, 200.0, 400.0], 60) + 2.0 * f + rng.normal(0, 1, f.size)
    det = pd.DataFrame({"frame": f, "det_index": np.tile(np.arange(3, dtype=np.int32), 60), "camera_id": "c",
                        "x1": x, "y1": 50.0, "x2": x + 40, "y2": 120.0, "confidence": np.float32(0.9),
                        "class_id": np.int32(0)})
    ctx = deferred_import("torch") if sys.argv[1] == "deferred" else open("/dev/null")
    with ctx:
        rows = {}
        for kind in ("ocsort", "bytetrack", "botsort"):
            out = Tracker2D(TrackerConfig.from_dict({"kind": kind}, fps=25.0), "c").run(det, 0, 60)
            rows[kind] = out[["frame", "track_id", "x1", "frame_status"]].astype(str).values.tolist()
    print(json.dumps({"torch": "torch" in sys.modules, "rows": rows}))
''')


def _run(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_box_trackers_run_without_torch_and_give_the_same_tracks():
    deferred, plain = _run(TRACK, "deferred"), _run(TRACK, "plain")
    assert deferred["torch"] is False, "boxmot's torch import was not deferred"
    assert plain["torch"] is True  # boxmot really imports it: the deferral is what saves the start-up
    assert deferred["rows"] == plain["rows"] and all(len(r) >= 150 for r in plain["rows"].values())


def test_deferred_module_is_imported_on_first_use_only():
    code = textwrap.dedent('''
        import json, sys
        from mctrack.runtime import deferred_import
        with deferred_import("colorsys"):
            import colorsys
            from colorsys import rgb_to_hsv  # the from-form imports the real module at once
        first = "colorsys" in sys.modules
        del sys.modules["colorsys"]
        with deferred_import("colorsys"):
            import colorsys
        before = "colorsys" in sys.modules
        hsv = colorsys.rgb_to_hsv(1.0, 0.0, 0.0)  # first attribute read: the real import
        print(json.dumps({"first": first, "before": before, "after": "colorsys" in sys.modules,
                          "same": colorsys.rgb_to_hsv is sys.modules["colorsys"].rgb_to_hsv, "hsv": hsv}))
    ''')
    r = _run(code)
    assert r["first"] and not r["before"] and r["after"] and r["same"] and r["hsv"] == [0.0, 1.0, 1.0]
