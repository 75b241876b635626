"""Prompts and tokenizers for measured calls, built in memory (no download).

The shipped prompt sets (``scaling/_prompts/<modality>.txt``) feed every measured call, one
prompt per repeat. A tokenizer is a word-level vocabulary over the words of those prompts
(CLIP: byte-pair merges that spell them), wrapped in the transformers class the pipeline's
constructor names, with the ``model_max_length`` the real tokenizer has, so every text
encoder sees the real sequence length (pipelines pad to it).
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from scaling.errors import InvalidSettingError, ScalingError
from scaling.registry import ModelSpec

__all__ = ["build_tokenizer", "encoder_for", "load_prompts", "tokenizer_classes", "tokenizer_max_length", "vocab_size_of"]

#: Default ``model_max_length`` per tokenizer class where the registry states no token count.
#: CLIP: 77 (all CLIP tokenizers). RobertaTokenizer here is CLAP's (laion/clap-htsat-*):
#: 512, and AudioLDM pads to it. T5: 512 (google t5 tokenizers); Stable Audio Open's own is
#: set in _MODEL_MAX_LENGTH below.
_DEFAULT_MAX_LENGTH = {"CLIPTokenizer": 77, "RobertaTokenizer": 512, "T5Tokenizer": 512}

#: Token counts the registry leaves null, per registry key and text encoder.
#: stable-audio-open-1.0: T5 conditioner ``max_length`` 128 (stable-audio-tools model_config).
_MODEL_MAX_LENGTH = {("stable-audio-open-1.0", "text_encoder"): 128}


@cache
def load_prompts(modality: str) -> tuple[str, ...]:
    """The shipped prompt set of a modality (``scaling/_prompts/<modality>.txt``)."""
    if modality not in ("image", "video", "audio"):
        raise InvalidSettingError(f"`modality` {modality!r}: prompts exist for image, video and audio")
    text = resources.files("scaling").joinpath("_prompts", f"{modality}.txt").read_text(encoding="utf-8")
    prompts = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if not prompts:
        raise ScalingError(f"scaling/_prompts/{modality}.txt holds no prompt")
    return prompts


@cache
def _prompt_words() -> tuple[str, ...]:
    """Every word of the shipped prompts, most frequent first (ties: alphabetical)."""
    counts: dict[str, int] = {}
    for modality in ("image", "video", "audio"):
        for p in load_prompts(modality):
            for w in re.findall(r"[a-z0-9]+", p.lower()):
                counts[w] = counts.get(w, 0) + 1
    return tuple(sorted(counts, key=lambda w: (-counts[w], w)))


_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def build_tokenizer(class_name: str, model_max_length: int, vocab_size: int | None = None):
    """A tokenizer built in memory, as an instance of the transformers class ``class_name``.

    Word-level over the words of the shipped prompts (CLIP: byte-pair merges that spell
    those words, as CLIP's own vocabulary does), capped so every id stays below
    ``vocab_size``; unknown words map to the unknown token. The pipeline pads or truncates
    to ``model_max_length``, which is what sets the text encoder's cost.
    """
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    cap = None if vocab_size is None else max(16, int(vocab_size) - 8)
    if class_name == "CLIPTokenizer":
        specials = ["<|startoftext|>", "<|endoftext|>"]
        vocab: dict[str, int] = {}
        for tok in specials + list(_CHARS) + [c + "</w>" for c in _CHARS]:
            vocab.setdefault(tok, len(vocab))
        merges: list[tuple[str, str]] = []
        for word in _prompt_words():
            parts = list(word[:-1]) + [word[-1] + "</w>"]
            new = []
            acc = parts[0]
            for p in parts[1:]:
                new.append(((acc, p), acc + p))
                acc = acc + p
            need = [t for _, t in new if t not in vocab]
            if cap is not None and len(vocab) + len(need) > cap:
                break
            for merge, tok in new:
                if tok not in vocab:
                    vocab[tok] = len(vocab)
                    merges.append(merge)
        return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)

    specials = ["<pad>", "</s>", "<unk>", "<s>", "<mask>"]
    words = list(_prompt_words())
    if cap is not None:
        words = words[: max(0, cap - len(specials))]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    cls = getattr(transformers, class_name, None)
    kwargs = dict(tokenizer_object=tok, model_max_length=model_max_length, pad_token="<pad>",
                  eos_token="</s>", unk_token="<unk>", bos_token="<s>")
    if class_name == "T5Tokenizer":
        kwargs["extra_ids"] = 0
    for candidate in (cls, transformers.PreTrainedTokenizerFast):
        if candidate is None:
            continue
        try:
            return candidate(**kwargs)
        except (TypeError, ValueError, AttributeError):
            continue
    raise ScalingError(f"cannot build a {class_name} in memory")  # pragma: no cover


def tokenizer_classes(pipeline_cls) -> dict[str, str]:
    """``tokenizer`` / ``tokenizer_2`` ... -> the class name the constructor annotates."""
    out = {}
    for name, p in inspect.signature(pipeline_cls.__init__).parameters.items():
        if name.startswith("tokenizer"):
            ann = p.annotation
            label = getattr(ann, "__name__", None) or str(ann)
            m = re.search(r"([A-Za-z0-9]+Tokenizer)(Fast)?", label)
            out[name] = m.group(1) if m else "PreTrainedTokenizerFast"
    return out


def encoder_for(tokenizer_name: str) -> str:
    """``tokenizer_2`` -> ``text_encoder_2``: the encoder a tokenizer feeds."""
    return "text_encoder" + tokenizer_name[len("tokenizer"):]


def tokenizer_max_length(spec: ModelSpec, encoder: str, class_name: str, module: Any = None,
                         tokenizer_name: str = "tokenizer") -> int:
    """The tokenizer's ``model_max_length``: a local folder's own tokenizer config, else the
    registry's token count, else the class default; never more positions than the text
    encoder has."""
    n = None
    if spec.source_dir and spec.key.startswith("local:"):
        cfg_file = Path(spec.source_dir) / tokenizer_name / "tokenizer_config.json"
        if cfg_file.is_file():
            import json

            value = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_max_length")
            n = int(value) if isinstance(value, (int, float)) and value < 1e6 else None
    n = n or spec.text_tokens.get(encoder) or _MODEL_MAX_LENGTH.get((spec.architecture_key, encoder))
    n = int(n) if n else _DEFAULT_MAX_LENGTH.get(class_name, 512)
    cfg = getattr(module, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    positions = getattr(cfg, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = 2 if class_name == "RobertaTokenizer" else 0  # RoBERTa positions start after the pad id
        n = min(n, positions - offset)
    return n


def vocab_size_of(module: Any) -> int | None:
    """The text encoder's vocabulary size (its config or text config), if it states one."""
    cfg = getattr(module, "config", None)
    for obj in (cfg, getattr(cfg, "text_config", None)):
        n = getattr(obj, "vocab_size", None) if obj is not None else None
        if n:
            return int(n)
    return None
