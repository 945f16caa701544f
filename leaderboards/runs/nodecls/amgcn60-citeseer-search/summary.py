"""Rank search.sh's IGNN settings for AM-GCN Citeseer by validation accuracy (seed 0, Picard);
test accuracy is printed beside it but plays no part in the choice. Writes summary.json.
`python summary.py DIR` ranks another search's DIR/configs.txt into DIR/summary.json."""
import json
import sys
from pathlib import Path

HERE = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parent
configs = dict(line.split(" ", 1) for line in (HERE / "configs.txt").read_text().splitlines() if line.strip())
rows = []
for name, opts in configs.items():
    f = HERE / name / "results.json"
    if f.exists():
        r = json.loads(f.read_text())
        rows.append({"name": name, "options": opts, "val_accuracy": r["val_accuracy"]["mean"],
                     "test_accuracy": r["test_accuracy"]["mean"], "train_seconds": r["train_seconds"]["mean"]})
rows.sort(key=lambda r: -r["val_accuracy"])
(HERE / "summary.json").write_text(json.dumps({"what": __doc__.split("\n\n")[0].replace("\n", " "),
                                                "chosen": rows[0]["name"] if rows else None, "ranked": rows}, indent=1) + "\n")
print("| settings | options | validation | test |\n| --- | --- | --- | --- |")
for r in rows:
    print(f"| {r['name']} | `{r['options']}` | {r['val_accuracy']:.1f} | {r['test_accuracy']:.1f} |")
