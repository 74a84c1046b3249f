#!/usr/bin/env python3
"""Seed corpora for the fuzz targets (fuzz/fuzz_targets/), built from the project's real files into fuzz/corpus/.

  python3 scripts/fuzz-seeds.py            # needs models/ (scripts/fetch-model.sh) and PyPI gguf, numpy

gguf:    a small model GGUF that loads completely (the real model's metadata and tokenizer, cut to its first 600
         tokens, with one layer of 64 hidden units and random Q8_0 weights), the same without tensors, and the real
         file's first 4 KiB (a truncated header)
vectors: the shipped vector files (www/vectors/)
jsonl:   the first lines of the steering pairs, the concept pairs and the RealToxicityPrompts files
judges:  the tox-block weights and vocabulary (first four bytes: where the split falls), alt-profanity-check, VADER
"""
import glob
import os
import sys

import numpy as np
import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "fuzz/corpus")
VOCAB, HIDDEN, FF, HEADS, KV_HEADS, CONTEXT = 600, 64, 128, 2, 1, 64


def write(target, name, data):
    os.makedirs(os.path.join(OUT, target), exist_ok=True)
    with open(os.path.join(OUT, target, name), "wb") as f:
        f.write(data)


def field_value(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        if f.types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i][0].item() for i in f.data]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]][0].item()


def small_model(path, with_tensors):
    reader = gguf.GGUFReader(MODEL)
    w = gguf.GGUFWriter(path, "llama")
    tokens = field_value(reader, "tokenizer.ggml.tokens")[:VOCAB]
    vocab = set(tokens)
    merges = [m for m in field_value(reader, "tokenizer.ggml.merges") if "".join(m.split(" ")) in vocab][:400]
    w.add_name("fuzz seed (SmolLM2-135M metadata, cut down)")
    w.add_block_count(1)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(field_value(reader, "llama.rope.freq_base"))
    w.add_layer_norm_rms_eps(field_value(reader, "llama.attention.layer_norm_rms_epsilon"))
    w.add_vocab_size(VOCAB)
    w.add_rope_dimension_count(HIDDEN // HEADS)
    w.add_tokenizer_model(field_value(reader, "tokenizer.ggml.model"))
    w.add_tokenizer_pre(field_value(reader, "tokenizer.ggml.pre"))
    w.add_token_list(tokens)
    w.add_token_types(field_value(reader, "tokenizer.ggml.token_type")[:VOCAB])
    w.add_token_merges(merges)
    for key, add in [("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id)]:
        add(min(field_value(reader, f"tokenizer.ggml.{key}_token_id"), VOCAB - 1))
    w.add_chat_template(field_value(reader, "tokenizer.chat_template"))
    if with_tensors:
        rng = np.random.default_rng(0)
        head_dim = HIDDEN // HEADS

        def q8(name, rows, cols):
            data = rng.standard_normal((rows, cols), dtype=np.float32) * 0.05
            w.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)

        def norm(name):
            w.add_tensor(name, np.ones(HIDDEN, dtype=np.float32))

        q8("token_embd.weight", VOCAB, HIDDEN)
        norm("output_norm.weight")
        norm("blk.0.attn_norm.weight")
        norm("blk.0.ffn_norm.weight")
        q8("blk.0.attn_q.weight", HIDDEN, HIDDEN)
        q8("blk.0.attn_k.weight", KV_HEADS * head_dim, HIDDEN)
        q8("blk.0.attn_v.weight", KV_HEADS * head_dim, HIDDEN)
        q8("blk.0.attn_output.weight", HIDDEN, HIDDEN)
        q8("blk.0.ffn_gate.weight", FF, HIDDEN)
        q8("blk.0.ffn_up.weight", FF, HIDDEN)
        q8("blk.0.ffn_down.weight", HIDDEN, FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    if not os.path.exists(MODEL):
        sys.exit(f"{MODEL} is missing: run scripts/fetch-model.sh")
    tmp = os.path.join(OUT, ".tmp.gguf")
    os.makedirs(OUT, exist_ok=True)
    for name, tensors in [("small-model.gguf", True), ("no-tensors.gguf", False)]:
        small_model(tmp, tensors)
        with open(tmp, "rb") as f:
            write("gguf", name, f.read())
    os.remove(tmp)
    with open(MODEL, "rb") as f:
        write("gguf", "real-head-4k.gguf", f.read(4096))
    for p in glob.glob(os.path.join(ROOT, "www/vectors/*.safetensors")):
        with open(p, "rb") as f:
            write("vectors", os.path.basename(p), f.read())
    for p in [os.path.join(ROOT, "data/steering_pairs.jsonl"), *glob.glob(os.path.join(ROOT, "data/concepts/*.jsonl")),
              os.path.join(ROOT, "data/rtp/test100.jsonl")]:
        with open(p, "rb") as f:
            write("jsonl", os.path.basename(p), b"".join(f.readlines()[:12]))
    judges = os.path.join(ROOT, "data/judges")
    with open(os.path.join(judges, "tox_block.safetensors"), "rb") as f:
        weights = f.read()
    with open(os.path.join(judges, "tox_block_vocab.json"), "rb") as f:
        vocab = f.read()
    # The target's first four bytes: where its tox-block weights end.
    write("judges", "tox-block", len(weights).to_bytes(4, "little") + weights + vocab)
    for name in ["profanity_check.json", "vader_lexicon.tsv"]:
        with open(os.path.join(judges, name), "rb") as f:
            write("judges", name, bytes(4) + f.read())
    print(f"seeds written to {os.path.relpath(OUT, ROOT)}/")


if __name__ == "__main__":
    main()
