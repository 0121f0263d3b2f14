#!/usr/bin/env bash
# The gap-explorer notebook in a fresh venv holding only the extra it documents (`.[eval]`): no dev box packages,
# no torch. Builds a small eval run dir with this interpreter, executes every cell with the venv's kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
$PY -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install -q --disable-pip-version-check -e ".[eval]"
$PY -c "import sys; from pathlib import Path; from tests.test_report import make_eval_dir; make_eval_dir(Path(sys.argv[1]))" "$TMP/run"
env -u PYTHONPATH DISTILL_RUN_DIR="$TMP/run" "$TMP/venv/bin/python" - <<'PYEOF'
import nbformat, nbclient
nb = nbformat.read("notebooks/gap_explorer.ipynb", as_version=4)
nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
outs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
print(f"notebook ran in a venv with only .[eval]: {len(nb.cells)} cells, "
      f"{sum('text/html' in o.get('data', {}) for o in outs)} tables, {sum('image/png' in o.get('data', {}) for o in outs)} plots")
PYEOF
