#!/usr/bin/env bash
# A CI-sized fuzz smoke run (docs/fuzzing.md): every target for FUZZ_SECONDS seconds
# (default 15) from its committed corpus and regressions, one at a time. New inputs go to
# fuzz/work/<target>/ (ignored by git); a crash fails the run and leaves its input in
# fuzz/artifacts/<target>/.
#
# It needs a nightly toolchain (libFuzzer's instrumentation) and cargo-fuzz. Without a
# nightly toolchain it says so and exits 0: the stable replay of the corpus
# (tests/it/fuzz_corpus.rs) runs in `cargo test` anyway. A missing cargo-fuzz is installed.
#
#   fuzz/smoke.sh                      all targets, 15 s each
#   FUZZ_SECONDS=300 fuzz/smoke.sh sasl one target, 5 minutes
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-15}"
all=(framer_bytes framer_structured framer_vs_rxml sasl jid stanza)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: SKIPPED: no nightly Rust toolchain (rustup toolchain install nightly); cargo-fuzz needs one."
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: installing cargo-fuzz"
    if ! cargo install cargo-fuzz --locked --quiet; then
        echo "fuzz/smoke.sh: SKIPPED: cargo-fuzz could not be installed."
        exit 0
    fi
fi

start=$SECONDS
echo "fuzz/smoke.sh: building the targets ($(rustup run nightly rustc --version))"
nice -n 10 cargo +nightly fuzz build

failed=()
for target in "${targets[@]}"; do
    mkdir -p "work/$target"
    dirs=("work/$target" "corpus/$target")
    [ -d "regressions/$target" ] && dirs+=("regressions/$target")
    dict=()
    case "$target" in framer_bytes | framer_vs_rxml | stanza) dict=(-dict=xml.dict) ;; esac
    echo "fuzz/smoke.sh: $target for ${seconds}s"
    if ! nice -n 10 cargo +nightly fuzz run "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 "${dict[@]}" 2>"work/$target.log"; then
        failed+=("$target")
        tail -n 40 "work/$target.log"
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "work/$target.log" | tail -n 1 || true
done

echo "fuzz/smoke.sh: $((SECONDS - start)) s in all"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/smoke.sh: failing targets: ${failed[*]} (inputs in fuzz/artifacts/, see docs/fuzzing.md)"
fi
echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
