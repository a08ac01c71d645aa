import json, glob, sys, statistics, re
d=sys.argv[1]; key=sys.argv[2:]
rows={}
for f in sorted(glob.glob(d+"/*.json")):
    tag=f.split("/")[-1][:-5]; side,i=tag.split("-")
    r=json.load(open(f))["results"]
    rows.setdefault(int(i),{})[side]=r
for k in key:
    olds=[rows[i]["old"][k] for i in sorted(rows) if "old" in rows[i] and k in rows[i]["old"]]
    news=[rows[i]["new"][k] for i in sorted(rows) if "new" in rows[i] and k in rows[i]["new"]]
    ratios=[rows[i]["new"][k]/rows[i]["old"][k] for i in sorted(rows) if "old" in rows[i] and "new" in rows[i] and rows[i]["old"].get(k)]
    print(f"{k}: old median {statistics.median(olds):.3f} {olds}\n   new median {statistics.median(news):.3f} {news}\n   paired ratio median {statistics.median(ratios):.3f} {[round(x,3) for x in ratios]}")
