# shellcheck shell=bash
# scripts/bench/bashloop.sh: the bash loop of subshells and command
# substitutions, timed in many short rounds with the variants in rotated
# order (the tight method of issue 5). Sourced by scripts/bench.sh and
# scripts/bash-rounds.sh; needs lib.sh (raw, rotated, vrun, die).

# bash_loop_rounds ROUNDS ITERATIONS VARIANT...: one bash_round record
# (wall-clock ns of `bash -c LOOP`) per round and variant.
bash_loop_rounds() {
    local rounds=$1 iters=$2 r v t0 t1
    shift 2
    local loop="for ((i = 0; i < $iters; i++)); do ( : ); x=\$(:); done"
    for ((r = 0; r < rounds; r++)); do
        local -a order=()
        mapfile -t order < <(rotated "$r" "$@")
        for v in "${order[@]}"; do
            t0=$(date +%s%N)
            vrun "$v" /bin/bash -c "$loop" || die "bash loop failed (${VLABEL[$v]})"
            t1=$(date +%s%N)
            raw bash_round "round=$r" "v=$v" "iters=$iters" "ns=$((t1 - t0))"
        done
    done
}
