#!/usr/bin/env bash
# Runs fuzz targets one after another, each for SECONDS (default 600), at
# nice 19, on the binaries `cargo +nightly fuzz build` made (build first).
# Each grows its own working corpus fuzz/work/<target> (not checked in) from
# the seeds in fuzz/corpus/<target>; its log is fuzz/work/<target>.log and a
# crash lands in fuzz/artifacts/<target>/. See docs/fuzzing.md.
#   fuzz/run.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(xml_answer fhir_claim_response fhir_eligibility_response fhir_claim roster_csv xlsx_roster claim_file api_request json_request)
fi
bin=target/x86_64-unknown-linux-gnu/release
dict_of() {
    case "$1" in
        xml_answer) echo dict/xml.dict ;;
        fhir_*) echo dict/fhir.dict ;;
        roster_csv) echo dict/roster_csv.dict ;;
        claim_file) echo dict/claim_file.dict ;;
        *) echo "" ;;
    esac
}
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "artifacts/$t"
    d="$(dict_of "$t")"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="artifacts/$t/")
    [ -n "$d" ] && args+=(-dict="$d")
    echo "== $t ($secs s)"
    nice -n 19 "$bin/$t" "${args[@]}" "work/$t" "corpus/$t" >"work/$t.log" 2>&1
    echo "exit $?"
    grep -E '^#[0-9]+' "work/$t.log" | tail -1
    grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "work/$t.log"
    echo "corpus: $(ls "work/$t" | wc -l) files; artifacts: $(ls "artifacts/$t" | wc -l)"
done
