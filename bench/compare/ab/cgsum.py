"""cgsum.py TAG...: the instructions callgrind counted in cg-TAG.cg (callgrind.sh), all of
them and without the logins (PBKDF2: SHA-256 and the salted password, with the memset
they do) and sled's spinning `Lazy::deref`, which depend on the run, not on the message
path."""
import subprocess, sys, re
skip = re.compile(r"sha256|salted_password|sled::lazy::Lazy|memset")
for tag in sys.argv[1:]:
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", f"cg-{tag}.cg"], capture_output=True, text=True).stdout
    total = skipped = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if not m or "PROGRAM TOTALS" in line: continue
        n = int(m.group(1).replace(",", ""))
        total += n
        if skip.search(m.group(2)): skipped += n
    print(f"{tag}: all {total:,} without logins/sled spin {total-skipped:,}")
