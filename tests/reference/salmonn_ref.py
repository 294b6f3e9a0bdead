"""Plain PyTorch reference of SALMONN's forward pass, for the parity tests only.

It reads the checkpoints in the authors' release layout (not the converted directory) and follows
the authors' code path (bytedance/SALMONN `models/salmonn.py`, BEATs from microsoft/unilm):

- audio: pad to 1 s, cut at 30 s; Whisper log-mel of the clip padded to 30 s (transformers'
  WhisperFeatureExtractor); BEATs Kaldi filter banks from torchaudio's own `compliance/kaldi.py`
  (taken from the torchaudio wheel in .cache/torchaudio, as torchaudio's C++ side cannot load here);
- encoders: transformers' WhisperModel encoder; BEATs written here in fairseq's layout (time-first,
  the `alpha = 32` attention rescaling, the weight-normed positional convolution kept as weight_g/v,
  one relative-position table object shared by every layer);
- ln_speech / ln_audio, zero-padding to the longer sequence, concatenation, F.unfold windows of
  17 frames, the Q-Former as transformers' Blip2QFormerModel (the same BERT-with-cross-attention
  maths as LAVIS), `speech_llama_proj`;
- Vicuna: transformers' LlamaForCausalLM with peft-style LoRA applied *unmerged* on q_proj/v_proj
  (result + B(A(x)) * alpha / r), inputs_embeds = [<s>] + embed(p_before) + speech + embed(p_after);
- the prompt: the config's prompt_template "USER: {}\nASSISTANT:" filled with
  "<Speech><SpeechHere></Speech> " + prompt.strip() (cli_inference.py), split at <SpeechHere> (prompt_wrap).
  The piecewise rule: each half is tokenized on its own without special tokens by the slow sentencepiece
  LlamaTokenizer of transformers 4.28, whose `_tokenize` is `sp_model.encode(piece)`: sentencepiece's own
  encoding of the piece, with its dummy prefix, so each half starts with "\u2581". Here that is the
  `sentencepiece` package's encode of the release's tokenizer.model, never the converted tokenizer.

Run with the vLLM environment's Python (torch, transformers):
    python -m tests.reference.salmonn_ref --release DIR --wav FILE --prompt TEXT --out FILE.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import sentencepiece as spm
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import (
    Blip2QFormerConfig,
    Blip2QFormerModel,
    LlamaForCausalLM,
    WhisperFeatureExtractor,
    WhisperModel,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = "USER: <Speech><SpeechHere></Speech> {}\nASSISTANT:"  # prompt_template.format(speech + prompt)


def torchaudio_kaldi():
    """torchaudio.compliance.kaldi from the torchaudio wheel (pure Python over torch), or None."""
    wheels = sorted((ROOT / ".cache" / "torchaudio").glob("torchaudio-*.whl"))
    if not wheels:
        return None
    target = ROOT / ".cache" / "torchaudio" / "kaldi.py"
    if not target.exists():
        with zipfile.ZipFile(wheels[-1]) as z:
            target.write_bytes(z.read("torchaudio/compliance/kaldi.py"))
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # only mfcc() uses it
    spec = importlib.util.spec_from_file_location("torchaudio_kaldi", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- BEATs, fairseq layout --------------------------------------------------------------------------


class RefBeatsAttention(nn.Module):
    def __init__(self, d, h, num_buckets, max_distance, gru):
        super().__init__()
        self.h, self.hd, self.num_buckets, self.max_distance, self.gru = h, d // h, num_buckets, max_distance, gru
        self.scaling = self.hd**-0.5
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (
            nn.Linear(d, d),
            nn.Linear(d, d),
            nn.Linear(d, d),
            nn.Linear(d, d),
        )
        self.relative_attention_bias = nn.Embedding(num_buckets, h)
        if gru:
            self.grep_linear = nn.Linear(self.hd, 8)
            self.grep_a = nn.Parameter(torch.ones(1, h, 1, 1))

    def bucket(self, rel):
        nb = self.num_buckets // 2
        out = (rel > 0).to(torch.long) * nb
        rel = torch.abs(rel)
        max_exact = nb // 2
        is_small = rel < max_exact
        large = max_exact + (
            torch.log(rel.float() / max_exact) / math.log(self.max_distance / max_exact) * (nb - max_exact)
        ).to(torch.long)
        large = torch.min(large, torch.full_like(large, nb - 1))
        return out + torch.where(is_small, rel, large)

    def compute_bias(self, q_len, k_len):
        rel = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
        return self.relative_attention_bias(self.bucket(rel)).permute([2, 0, 1])

    def forward(self, x, position_bias):
        tgt, bsz, d = x.shape
        if position_bias is None:
            position_bias = self.compute_bias(tgt, tgt).unsqueeze(0).repeat(bsz, 1, 1, 1).view(bsz * self.h, tgt, tgt)
        alpha = 32
        q = self.q_proj(x) * self.scaling * (1 / alpha)
        k, v = self.k_proj(x), self.v_proj(x)
        q = q.contiguous().view(tgt, bsz * self.h, self.hd).transpose(0, 1)
        k = k.contiguous().view(-1, bsz * self.h, self.hd).transpose(0, 1)
        v = v.contiguous().view(-1, bsz * self.h, self.hd).transpose(0, 1)
        w = torch.bmm(q, k.transpose(1, 2))
        w = (w - w.max(dim=-1, keepdim=True)[0]) * alpha
        bias = position_bias
        if self.gru:
            ql = q.view(bsz, self.h, tgt, self.hd) * alpha / self.scaling
            ga, gb = torch.sigmoid(self.grep_linear(ql).view(bsz, self.h, tgt, 2, 4).sum(-1)).chunk(2, dim=-1)
            bias = (ga * (gb * self.grep_a - 1.0) + 2.0).view(bsz * self.h, tgt, 1) * position_bias
        w = F.softmax(w + bias.view(w.size()), dim=-1)
        out = torch.bmm(w, v).transpose(0, 1).contiguous().view(tgt, bsz, d)
        return self.out_proj(out), position_bias


class RefBeatsLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["encoder_embed_dim"]
        self.self_attn = RefBeatsAttention(
            d, cfg["encoder_attention_heads"], cfg["num_buckets"], cfg["max_distance"], cfg["gru_rel_pos"]
        )
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, cfg["encoder_ffn_embed_dim"]), nn.Linear(cfg["encoder_ffn_embed_dim"], d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.alpha = math.pow(2 * cfg["encoder_layers"], 1 / 4) if cfg["deep_norm"] else 1

    def forward(self, x, pos_bias):
        residual = x
        x, pos_bias = self.self_attn(x, pos_bias)
        x = self.self_attn_layer_norm(residual * self.alpha + x)
        residual = x
        x = self.fc2(F.gelu(self.fc1(x)))
        return self.final_layer_norm(residual * self.alpha + x), pos_bias


class RefBeats(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d, e, p = cfg["encoder_embed_dim"], cfg["embed_dim"], cfg["input_patch_size"]
        self.post_extract_proj = nn.Linear(e, d) if e != d else None
        self.patch_embedding = nn.Conv2d(1, e, kernel_size=p, stride=p, bias=cfg["conv_bias"])
        self.layer_norm = nn.LayerNorm(e)
        self.encoder = nn.Module()
        conv = nn.Conv1d(
            d, d, kernel_size=cfg["conv_pos"], padding=cfg["conv_pos"] // 2, groups=cfg["conv_pos_groups"]
        )
        self.encoder.pos_conv = nn.Sequential(nn.utils.weight_norm(conv, name="weight", dim=2))
        self.encoder.layers = nn.ModuleList(RefBeatsLayer(cfg) for _ in range(cfg["encoder_layers"]))
        for layer in self.encoder.layers[1:]:
            layer.self_attn.relative_attention_bias = self.encoder.layers[0].self_attn.relative_attention_bias
        self.encoder.layer_norm = nn.LayerNorm(d)
        if cfg.get("finetuned_model"):
            self.predictor = nn.Linear(d, cfg["predictor_class"])

    def extract_features(self, source, kaldi):
        fbanks = [kaldi(w.unsqueeze(0) * 2**15) for w in source]
        fbank = (torch.stack(fbanks, dim=0) - 15.41663) / (2 * 6.55582)
        x = self.patch_embedding(fbank.unsqueeze(1))
        x = self.layer_norm(x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        conv = self.encoder.pos_conv(x.transpose(1, 2))
        if self.cfg["conv_pos"] % 2 == 0:
            conv = conv[:, :, :-1]  # SamePad
        x = self.encoder.layer_norm(x + F.gelu(conv).transpose(1, 2))
        x = x.transpose(0, 1)
        pos_bias = None
        for layer in self.encoder.layers:
            x, pos_bias = layer(x, pos_bias)
        return x.transpose(0, 1)


# --- Q-Former via transformers, from LAVIS names ----------------------------------------------------


def qformer_from_lavis(ckpt: dict, heads: int, enc_width: int) -> Blip2QFormerModel:
    hidden = ckpt["speech_query_tokens"].shape[-1]
    layers = 1 + max(int(k.split(".")[4]) for k in ckpt if k.startswith("speech_Qformer.bert.encoder.layer."))
    inter = ckpt["speech_Qformer.bert.encoder.layer.0.intermediate_query.dense.weight"].shape[0]
    cfg = Blip2QFormerConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        encoder_hidden_size=enc_width,
        cross_attention_frequency=1,
        layer_norm_eps=1e-12,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = Blip2QFormerModel(cfg)
    sd = {}
    for k, v in ckpt.items():
        if not k.startswith("speech_Qformer.bert.") or k.endswith("position_ids"):
            continue
        k = k.removeprefix("speech_Qformer.bert.")
        k = k.replace("embeddings.LayerNorm", "layernorm").replace("attention.self.", "attention.attention.")
        sd[k] = v
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # Only the text-token FFN (`intermediate`, `output`), which SALMONN deletes, may be missing.
    assert not unexpected and all(
        ".intermediate." in m or ".output." in m and "output_query" not in m and "attention" not in m for m in missing
    ), (missing, unexpected)
    return model.eval()


# --- the whole model --------------------------------------------------------------------------------


class ReferenceSalmonn:
    def __init__(self, release: Path, qformer_heads: int, lora_alpha: float = 32.0):
        ckpt = torch.load(release / "salmonn.pth", map_location="cpu", weights_only=True)["model"]
        self.sentencepiece = spm.SentencePieceProcessor(model_file=str(release / "vicuna" / "tokenizer.model"))
        self.llama = LlamaForCausalLM.from_pretrained(release / "vicuna", dtype=torch.float32).eval()
        self._attach_lora(ckpt, lora_alpha)
        self.whisper = WhisperModel.from_pretrained(release / "whisper", dtype=torch.float32).encoder.eval()
        self.extractor = WhisperFeatureExtractor.from_pretrained(release / "whisper")
        beats = torch.load(release / "beats.pt", map_location="cpu", weights_only=True)
        self.beats = RefBeats(beats["cfg"]).eval()
        self.beats.load_state_dict(beats["model"], strict=True)
        # The authors' trainer keeps BEATs' shared table under layers 1..N (frozen parts are dropped by
        # named_parameters(), which lists a shared parameter once); their load_state_dict(strict=False) puts
        # those copies into the one shared module, so they must equal the BEATs checkpoint's table.
        for key, value in ckpt.items():
            if key.startswith("beats."):
                assert torch.equal(value, beats["model"][key.removeprefix("beats.")]), key
        wd, bd = self.whisper.config.d_model, beats["cfg"]["encoder_embed_dim"]
        self.ln_speech, self.ln_audio = nn.LayerNorm(wd), nn.LayerNorm(bd)
        self.ln_speech.load_state_dict({"weight": ckpt["ln_speech.weight"], "bias": ckpt["ln_speech.bias"]})
        self.ln_audio.load_state_dict({"weight": ckpt["ln_audio.weight"], "bias": ckpt["ln_audio.bias"]})
        self.qformer = qformer_from_lavis(ckpt, qformer_heads, wd + bd)
        self.query_tokens = ckpt["speech_query_tokens"]
        self.proj = nn.Linear(*ckpt["speech_llama_proj.weight"].shape[::-1])
        self.proj.load_state_dict({"weight": ckpt["speech_llama_proj.weight"], "bias": ckpt["speech_llama_proj.bias"]})
        self.kaldi = torchaudio_kaldi()
        if self.kaldi is None:
            raise RuntimeError("torchaudio wheel not in .cache/torchaudio (scripts/setup fetches it)")

    def _attach_lora(self, ckpt: dict, alpha: float) -> None:
        for i, layer in enumerate(self.llama.model.layers):
            for proj in ("q_proj", "v_proj"):
                pre = f"llama_model.base_model.model.model.layers.{i}.self_attn.{proj}"
                a, b = ckpt[f"{pre}.lora_A.default.weight"], ckpt[f"{pre}.lora_B.default.weight"]
                scaling = alpha / a.shape[0]
                module = getattr(layer.self_attn, proj)
                module.register_forward_hook(lambda m, inp, out, a=a, b=b, s=scaling: out + (inp[0] @ a.T @ b.T) * s)

    @torch.no_grad()
    def speech_embeds(self, audio: np.ndarray) -> torch.Tensor:
        if len(audio) < 16000:
            audio = np.concatenate([audio, np.zeros(16000 - len(audio), dtype=audio.dtype)])
        audio = audio[: 16000 * 30]
        spectrogram = torch.from_numpy(
            self.extractor(audio, sampling_rate=16000, return_tensors="np")["input_features"]
        )
        raw_wav = torch.from_numpy(audio).float().unsqueeze(0)
        speech = self.ln_speech(self.whisper(spectrogram, return_dict=True).last_hidden_state)
        fbank = lambda w: self.kaldi.fbank(
            w, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10
        )  # noqa: E731
        audio_embeds = self.ln_audio(self.beats.extract_features(raw_wav, fbank))
        if audio_embeds.size(1) < speech.size(1):
            audio_embeds = F.pad(audio_embeds, (0, 0, 0, speech.size(1) - audio_embeds.size(1)))
        elif audio_embeds.size(1) > speech.size(1):
            speech = F.pad(speech, (0, 0, 0, audio_embeds.size(1) - speech.size(1)))
        x = torch.cat((speech, audio_embeds), dim=-1)
        B, T, C = x.shape
        kernel = (1, round(1500 * 0.333333 / 30.0))
        stride = (1, round(1500 * 0.333333 / 30.0))
        overlap = F.unfold(x.transpose(1, 2).unsqueeze(2), kernel_size=kernel, dilation=1, padding=0, stride=stride)
        _, _, L = overlap.shape
        overlap = torch.permute(overlap.view(B, -1, kernel[1], L), [0, 3, 2, 1])
        windows = overlap.reshape(-1, kernel[1], C)
        queries = self.query_tokens.expand(windows.shape[0], -1, -1)
        out = self.qformer(
            query_embeds=queries,
            encoder_hidden_states=windows,
            encoder_attention_mask=torch.ones(windows.shape[:-1], dtype=torch.long),
        ).last_hidden_state
        return self.proj(out).view(B, -1, self.proj.out_features)

    @torch.no_grad()
    def forward(self, audio: np.ndarray, prompt: str) -> tuple[list[int], torch.Tensor, int]:
        """Returns (the prompt's token ids with -1 at speech positions, log-probs (T, V), speech length)."""
        speech = self.speech_embeds(audio)
        before, after = TEMPLATE.format(prompt.strip()).split("<SpeechHere>")
        ids_b, ids_a = self.sentencepiece.encode(before), self.sentencepiece.encode(after)
        embed = self.llama.model.embed_tokens
        bos = [self.sentencepiece.bos_id()]
        embeds = torch.cat([embed(torch.tensor([bos + ids_b])), speech, embed(torch.tensor([ids_a]))], dim=1)
        logits = self.llama(inputs_embeds=embeds).logits[0]
        ids = bos + ids_b + [-1] * speech.shape[1] + ids_a
        return ids, torch.log_softmax(logits.float(), dim=-1), speech.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--release", type=Path, required=True)
    parser.add_argument("--wav", type=Path, required=True)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--qformer-heads", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    audio, sr = sf.read(args.wav, dtype="float32")
    assert sr == 16000 and audio.ndim == 1
    model = ReferenceSalmonn(args.release, args.qformer_heads)
    ids, logprobs, n_speech = model.forward(audio, args.prompt)
    args.out.write_text(json.dumps({"ids": ids, "logprobs": logprobs.tolist(), "speech_tokens": n_speech}))


if __name__ == "__main__":
    main()
