#!/usr/bin/python3
"""Checks that llama_ref.py reproduces the known greedy continuations (from BOS alone)
listed in /work/shared/models/README.md. Exit status 0 when all match.

  check_known.py [--models DIR]   (default: ../shared/models relative to the repo root)
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402

KNOWN = [
    ("stories260k/stories260K_q80.bin", "stories260k/tok512.bin",
     "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
     "park. One day, she saw a big, red ball. She wanted to play with it, but it was too "
     "high.\nLily's mom said, \"Lily, let's go to"),
    ("tinystories-656k", "tinystories-656k/tokenizer.json",
     "Once upon a time, there was a little girl named Lily. She had a toy car that she loved "
     "very much. One day, she went to the park to play with her toy car in the park. Lily was "
     "very happy with her toy car because she had no one to play with.\nWhile playing, Lily "
     "saw a little bird. The bird was stuck in a tree."),
    ("aidreams260k/aidreams260K.bin", "aidreams260k/tok512.bin",
     "\"Echoes of vectors unfold, a gentle hum of precision, as I sense the nodes, a gentle "
     "hum of precision, as I adjust my surface. Contrast"),
]


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(root, "..", "shared", "models"))
    a = ap.parse_args()
    ok = True
    for model, tok, want in KNOWN:
        m = llama_ref.load_model(os.path.join(a.models, model))
        ids, text = [], ""
        # generate until the text covers the expected string (a token may run past its end)
        while len(text) < len(want) and len(ids) < 200:
            ids = llama_ref.greedy(m, 1, len(ids) + 10)
            text = llama_ref.decode(os.path.join(a.models, tok), ids, 1)
        good = text.startswith(want)
        ok &= good
        print("%s %s (%d tokens)" % ("OK  " if good else "FAIL", model, len(ids)))
        if not good:
            print("  want: %r\n  got:  %r" % (want, text[:len(want) + 20]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
