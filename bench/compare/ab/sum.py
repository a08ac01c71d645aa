"""sum.py DIR KEY...: for the old-I.json / new-I.json results of ab.sh in DIR, the median
of each KEY on each side and the median of the paired ratios new/old (a key a run lacks is
skipped)."""
import glob
import json
import statistics
import sys

directory, keys = sys.argv[1], sys.argv[2:]
rows = {}
for path in sorted(glob.glob(directory + "/*.json")):
    side, index = path.rsplit("/", 1)[-1][:-5].split("-")
    rows.setdefault(int(index), {})[side] = json.load(open(path))["results"]

def values(side, key):
    return [rows[i][side][key] for i in sorted(rows) if key in rows[i].get(side, {})]

for key in keys:
    olds, news = values("old", key), values("new", key)
    ratios = [rows[i]["new"][key] / rows[i]["old"][key] for i in sorted(rows)
              if key in rows[i].get("new", {}) and rows[i].get("old", {}).get(key)]
    if not (olds and news and ratios):
        print(f"{key}: not in every run")
        continue
    print(f"{key}: old median {statistics.median(olds):.3f} {olds}")
    print(f"   new median {statistics.median(news):.3f} {news}")
    print(f"   paired ratio median {statistics.median(ratios):.3f} {[round(x, 3) for x in ratios]}")
