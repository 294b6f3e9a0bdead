"""Tiny random-weight models that vLLM can serve, for the demo and the tests.

Real annotator weights are gigabytes and cannot be fetched everywhere this project runs. These
builders write small checkpoints of the same architectures as the real models (Qwen2 for text,
Qwen2-Audio for audio), so the full serving path -- vLLM's OpenAI server, chat templates,
multimodal inputs, structured outputs -- runs for real; only the answers are nonsense.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2AudioConfig,
    Qwen2AudioEncoderConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2Config,
    Qwen2ForCausalLM,
    WhisperFeatureExtractor,
)

__all__ = ["build_audio_model", "build_chat_univi_model", "build_salmonn_model", "build_text_model", "is_complete"]

# Written last: a directory without it is a build that was interrupted, never a usable model.
_MARKER = ".tiny-model-complete"

_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_AUDIO_TOKENS = ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"]
_VOCAB_SIZE = 1000
_QUOTE_GAIN = 4.0

# Emotion words and JSON punctuation get their own merges, so schema-constrained replies take
# few tokens; Chinese is there because the dataset's subtitles are bilingual.
_CORPUS = [
    '{"clues": "The speaker raises the voice and speaks fast.", "emotional_states": ["anger", "frustration"]}',
    '{"subtitle_analysis": "The word \\"finally\\" shows relief.", "description": "In the video the person smiles; '
    'in the audio the tone is warm; in the text the words are kind."}',
    '{"translation": "I am so happy to see you again."}',
    '{"labels": ["joy", "surprise", "sadness", "fear", "disgust", "neutral", "anxiety", "relief"]}',
    '{"labels": []}',
    "happy happiness joy joyful excited excitement calm content love grateful proud hopeful amused",
    "sad sadness lonely disappointed grief tired bored guilty ashamed regret hurt",
    "angry anger annoyed frustrated irritated furious hate contempt disgust disgusted",
    "afraid fear scared nervous worried anxious anxiety panic tense surprised surprise shocked confused",
    "The person looks at the camera, frowns, and sighs before answering the question.",
    "Her voice trembles and the pitch drops at the end of the sentence, which suggests sadness.",
    "He laughs loudly, claps his hands and says that this is the best day of his life.",
    "In the video, in the audio, in the text: the emotional state of the main character is clear.",
    "What do you think about it? I don't know. Why did you do that? Please tell me the truth.",
    "You are a helpful assistant. Describe the emotion clues in the audio and answer in JSON.",
    "快乐 高兴 开心 幸福 兴奋 满意 感激 骄傲 希望 平静 爱",
    "悲伤 难过 伤心 孤独 失望 痛苦 疲惫 内疚 后悔",
    "愤怒 生气 烦躁 沮丧 讨厌 厌恶 轻蔑",
    "恐惧 害怕 紧张 担心 焦虑 惊讶 震惊 困惑 中性",
    "他笑着说：“今天是我一生中最好的一天！”",
    "她的声音在颤抖，说话的语气很低沉，看起来非常难过。",
    "你为什么这么做？我不知道。请告诉我真相，好吗？",
    "视频中的人物皱着眉头，叹了一口气，然后回答了问题。",
    "字幕：我终于完成了这个项目，真是太好了。",
    "0123456789 ,.;:!?'\"()[]{}<>-_/\\ \n\t",
]

# ChatML, as the Qwen models use. Content may be a string or a list of OpenAI-style parts: vLLM
# sees the loop over parts and hands the template the parts, so the audio placeholder lands in
# the prompt where the processor expects to expand it.
_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}"
    "{{- part['text'] -}}"
    "{%- elif part['type'] in ['audio', 'audio_url', 'input_audio'] -%}"
    "{{- 'Audio: <|audio_bos|><|AUDIO|><|audio_eos|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- endif -%}"
)


def is_complete(model_dir: Path) -> bool:
    """Whether `model_dir` holds a finished build from this module."""
    return (Path(model_dir) / _MARKER).is_file()


def build_text_model(out_dir: Path, seed: int = 0) -> Path:
    """Build (once) a 2-layer random Qwen2ForCausalLM with a ChatML tokenizer in `out_dir`."""
    return _build_once(Path(out_dir), lambda tmp: _write_text_model(tmp, seed))


def build_audio_model(out_dir: Path, seed: int = 0) -> Path:
    """Build (once) a random Qwen2AudioForConditionalGeneration with its processor in `out_dir`."""
    return _build_once(Path(out_dir), lambda tmp: _write_audio_model(tmp, seed))


def build_salmonn_model(out_dir: Path, seed: int = 0) -> Path:
    """Build (once) a random SALMONN the way an operator gets a real one: checkpoints in the authors'
    release layout (annotators/vllm_models/fake_release.py) converted by the plugin's converter."""
    return _build_once(Path(out_dir), lambda tmp: _write_salmonn_model(tmp, seed))


def _write_salmonn_model(out_dir: Path, seed: int) -> None:
    from annotators.vllm_models.convert import convert_salmonn
    from annotators.vllm_models.fake_release import TINY_QFORMER, write_salmonn_release

    with tempfile.TemporaryDirectory() as release:
        paths = write_salmonn_release(Path(release), seed)
        # convert_salmonn writes a fresh directory: convert beside, then move the files into `out_dir`.
        converted = convert_salmonn(
            **paths,
            out_dir=Path(release) / "converted",
            qformer_heads=TINY_QFORMER["num_attention_heads"],
            dtype="float32",
        )
        for path in converted.iterdir():
            shutil.move(str(path), out_dir / path.name)


def build_chat_univi_model(out_dir: Path, seed: int = 0) -> Path:
    """Build (once) a random Chat-UniVi from a fake release (Chat-UniVi repo + CLIP), converted like the real one."""
    return _build_once(Path(out_dir), lambda tmp: _write_chat_univi_model(tmp, seed))


def _write_chat_univi_model(out_dir: Path, seed: int) -> None:
    from annotators.vllm_models.convert import convert_chat_univi
    from annotators.vllm_models.fake_release import write_chat_univi_release

    with tempfile.TemporaryDirectory() as release:
        paths = write_chat_univi_release(Path(release), seed)
        converted = convert_chat_univi(paths["repo"], paths["clip"], Path(release) / "converted", dtype="float32")
        for path in converted.iterdir():
            shutil.move(str(path), out_dir / path.name)


def _build_once(out_dir: Path, write: Callable[[Path], None]) -> Path:
    if is_complete(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename into place, so a reader (or a concurrent builder, such
    # as another test worker) never sees a half-written model.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the served model is shared like any other
    try:
        write(tmp)
        for path in tmp.iterdir():
            path.chmod(0o644)  # transformers writes the weights owner-only
        (tmp / _MARKER).write_text("ok\n")
        if out_dir.exists():
            if is_complete(out_dir):  # another builder finished first
                return out_dir
            shutil.rmtree(out_dir)  # leftovers of an interrupted build
        try:
            os.replace(tmp, out_dir)
        except OSError:  # lost a race to another builder after all
            if not is_complete(out_dir):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _train_tokenizer() -> PreTrainedTokenizerFast:
    # Byte-level BPE, like Qwen's: any UTF-8 text (and any JSON string) can be encoded.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=_CHAT_TEMPLATE,
        model_max_length=4096,
    )


def _text_config(tokenizer: PreTrainedTokenizerFast) -> Qwen2Config:
    # head_dim 64 (128 / 2): vLLM's CPU attention rejects small head sizes such as 16.
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )


def _generation_config(tokenizer: PreTrainedTokenizerFast) -> GenerationConfig:
    # Stop at the end of the assistant turn, or at the end of the text.
    stop = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    return GenerationConfig(eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)


def _favour_closing_quotes(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, factor: float = _QUOTE_GAIN
) -> None:
    """Scale the output rows of tokens that start with a double quote.

    Uniformly random weights almost never pick the one token that ends a JSON string, so every
    string runs to its schema bound (thousands of tokens, minutes on a CPU). With these rows scaled,
    a quote wins at a good share of positions: strings end after a few tokens, replies stay short,
    and the grammar still decides everything else. The answers remain noise.
    """
    ids = [i for token, i in tokenizer.get_vocab().items() if token.startswith('"')]
    with torch.no_grad():
        model.get_output_embeddings().weight[ids] *= factor


def _write_text_model(out_dir: Path, seed: int) -> None:
    tokenizer = _train_tokenizer()
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(_text_config(tokenizer)).to(torch.float32)
    _favour_closing_quotes(model, tokenizer)
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _write_audio_model(out_dir: Path, seed: int) -> None:
    tokenizer = _train_tokenizer()
    # Appended after training, so ordinary tokens keep the same ids as in the text model.
    tokenizer.add_special_tokens({"additional_special_tokens": _AUDIO_TOKENS})
    config = Qwen2AudioConfig(
        # 1500 positions = 30 s: the Whisper feature extractor pads every clip to 3000 frames.
        audio_config=Qwen2AudioEncoderConfig(
            num_mel_bins=128,
            encoder_layers=1,
            encoder_attention_heads=1,
            encoder_ffn_dim=128,
            d_model=64,
            max_source_positions=1500,
        ),
        text_config=_text_config(tokenizer),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config).to(torch.float32)
    _favour_closing_quotes(model, tokenizer)
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(out_dir)
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000),
        tokenizer=tokenizer,
        chat_template=_CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
    _rename_language_model_keys(out_dir)


def _rename_language_model_keys(out_dir: Path) -> None:
    """Store the language model under the key layout of the published Qwen2-Audio checkpoints.

    transformers 5 saves the wrapped Qwen2ForCausalLM as `language_model.model.model.*`, while
    vLLM (like the released checkpoints) loads `language_model.model.*`; without the rename
    vLLM fails at start-up on unexpected weight names. transformers still loads the renamed file.
    """
    for path in out_dir.glob("*.safetensors"):
        tensors = load_file(path)
        renamed = {_vllm_key(key): value for key, value in tensors.items()}
        if renamed.keys() != tensors.keys():
            save_file(renamed, path, metadata={"format": "pt"})
    index = out_dir / "model.safetensors.index.json"
    if index.exists():  # sharded checkpoints name every weight in the index too
        data = json.loads(index.read_text())
        data["weight_map"] = {_vllm_key(k): v for k, v in data["weight_map"].items()}
        index.write_text(json.dumps(data, indent=2))


def _vllm_key(key: str) -> str:
    return key.replace("language_model.model.model.", "language_model.model.", 1)
