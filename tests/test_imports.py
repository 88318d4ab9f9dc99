"""Start-up cost: planning (every experiment registered), fitting, comparing, plotting and
importing the recorder never import torch."""

from __future__ import annotations

import subprocess
import sys


def test_light_stages_do_not_import_torch() -> None:
    code = (
        "import sys, equivdyn, equivdyn.cli, equivdyn.stages, equivdyn.plan, equivdyn.experiments.e1.fig2, "
        "equivdyn.recorder, equivdyn.callbacks, equivdyn.experiments.custom.fig;"
        "from equivdyn.experiments import registered;"
        "assert sorted(e.name for e in registered()) == ['custom', 'e1', 'e2', 'e3', 'e4'];"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
