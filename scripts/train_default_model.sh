#!/usr/bin/env bash
# Recreates the project's default model (models/default.gguf) and its DSpark drafter
# (models/default-dspark/) from nothing but Debian's bible-kjv-text package:
#
#   scripts/train_default_model.sh [WORKDIR]        (default WORKDIR: build/default-model)
#
#   1. corpus      scripts/make_corpus.sh (King James Bible, public domain; data/CORPUS.md)
#   2. tokenizer   byte-level BPE, 4,096 tokens, trained on the training chapters
#   3. target      a 6-layer Llama (11.3M parameters) pre-trained with train-lm
#   4. drafter     a 1-layer DSpark drafter trained with train-draft on the target's hidden
#                  states over every third training chapter
#   5. calibration STS fitted with calibrate on data/prompts/kjv-calibrate.txt
#
# Every step is deterministic for a given machine's kernels and resumable: after an
# interruption, run the script again and each trainer continues from its last checkpoint.
# On this project's 2-core machines step 3 takes about 1 h 20 min and step 4 about 25 min.
# The results are left in WORKDIR; the last lines print how to install them as the default.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-build/default-model}"
dspark=build/dspark
[ -x "$dspark" ] || scripts/setup.sh
mkdir -p "$work"

scripts/make_corpus.sh build/corpus
$dspark train-tokenizer --corpus build/corpus/kjv-train.txt --eval build/corpus/kjv-heldout.txt \
  --vocab-size 4096 -o "$work/kjv-bpe-4096.gguf"

$dspark train-lm -o "$work/target" --corpus build/corpus/kjv-train.txt --heldout build/corpus/kjv-heldout.txt \
  --tokenizer "$work/kjv-bpe-4096.gguf" --layers 6 --dim 384 --heads 8 --kv-heads 4 \
  --ffn 1024 --context 512 --seq-len 256 --batch 8 --steps 2400 --lr 2e-3 --save-every 100 --eval-every 250 \
  --log-every 25 --seed 1234

# Every third chapter (paragraph) of the training text: about 330 k tokens of target features.
awk -v RS= -v ORS='\n\n' 'NR % 3 == 1' build/corpus/kjv-train.txt >"$work/drafter-corpus.txt"
$dspark train-draft -m "$work/target/model.gguf" -o "$work/dspark" --corpus "$work/drafter-corpus.txt" \
  --cache "$work/drafter-cache" --seq-len 256 --kind dspark --layers 1 --block 7 --markov-rank 32 \
  --steps 400 --batch 8 --lr 1e-2 --seed 42 --save-every 25 --log-every 5

$dspark calibrate -m "$work/target/model.gguf" -d "$work/dspark" --prompts data/prompts/kjv-calibrate.txt \
  --temps 0,1 -n 128 --seed 7

cat >&2 <<EOF
done. To make these the default model and drafter:
  cp $work/target/model.gguf models/default.gguf
  mkdir -p models/default-dspark
  cp $work/dspark/{config.json,model.safetensors,calibration.json} models/default-dspark/
EOF
