#!/usr/bin/env bash
# The issue-10 benchmark on this 2-core CPU machine when no GPU is lent: one `list_core.bench` process per
# (method group, K, seed, set), two at a time (one thread each), in priority order (seed-major, LiST and the
# probes first, the fine-tuning peers last), so a run cut short by LIMIT still has whole seeds.
#
#   bash benchmarks/cpu_k10k30.sh OUTDIR SECONDS [DATA_DIR]
#
# A candidate preset is measured before it becomes the preset with LIST_SET (extra `--set` arguments of the `list`
# runs) and PEER_SET (of the probes, so they read the same view with the same class balance), e.g.
#   LIST_SET="--set final_mix=0.3" \
#   PEER_SET="--set feature_layers=3 --set teacher_views= --set class_balance=true" bash benchmarks/cpu_k10k30.sh OUT 36000
# (the fast preset's teacher_views need feature_layers=6: another view clears them), then
# `python -m list_core.bench --merge OUT/*.json --as-preset fast` once the preset takes those settings.
# DRY_RUN=1 writes OUTDIR/commands.txt and stops.
set -u
OUTDIR=${1:?OUTDIR}; LIMIT=${2:-3600}; DATA=${3:-../shared/data}
LIST_SET=${LIST_SET:-}; PEER_SET=${PEER_SET:-}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUTDIR"; : > "$OUTDIR/commands.txt"
line() {  # name methods k seed set [extra --set arguments]
  echo "python -m list_core.bench --data $DATA/$5 --k $3 --seeds $4 --methods $2 --preset fast ${6:-}--out $OUTDIR/$1-k$3-$5-s$4.json > $OUTDIR/$1-k$3-$5-s$4.log 2>&1" >> "$OUTDIR/commands.txt"
}
for seed in 1 2 3 4 5; do
  for k in 30 10; do
    for s in subj bbc mr; do line list list $k $seed $s "${LIST_SET:+$LIST_SET }"; done
    for s in subj bbc mr rte; do
      line probes zero-shot,linear-probe,self-train-probe,prompt-prior-probe $k $seed $s "${PEER_SET:+$PEER_SET }"
    done
    line pairsim pair-similarity $k $seed rte  # pair tasks only
  done
done
for seed in 1 2 3; do for k in 30 10; do for s in subj bbc mr; do line finetune prompt,classic $k $seed $s; done; done; done
echo "$(wc -l < "$OUTDIR/commands.txt") processes, 2 at a time, limit ${LIMIT}s"
start=$(date +%s)
[ -n "${DRY_RUN:-}" ] && exit 0
timeout "$LIMIT" xargs -P 2 -I{} bash -c {} < "$OUTDIR/commands.txt"
rc=$?
echo "finished after $(( $(date +%s) - start ))s (rc $rc)"
